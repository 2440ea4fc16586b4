"""invlend: Monte Carlo simulation of investment-lending linkage (投贷联动).

Simulate portfolios of technology firms across lifecycle stages -- stochastic growth,
funding rounds, default, IPO and M&A exits -- and evaluate a bank's financing structures
(pure loan, loan with warrant, VC-linked loan, equity) on the same paths, with standard
errors on every estimate.

Example
-------
>>> import invlend as il
>>> res = il.simulate(il.Scenario.default(), il.default_structures(),
...                   n_portfolios=50, portfolio_size=40, seed=1)
>>> sorted(res.summary())
['pure_loan', 'vc_linked', 'warrant_loan']
"""

from invlend import capital, plotting
from invlend._sim.layout import Event
from invlend._version import __version__
from invlend.attribution import Attribution, attribute, attribute_run
from invlend.branch import IncentiveView, first_year_profit, incentives
from invlend.calibrate import (
    Calibration,
    TargetSet,
    calibrate,
    calibration_report,
    load_targets,
    target_sets,
)
from invlend.cohort import Cohort, cohort
from invlend.competition import (
    Competition,
    CompetitionCurve,
    CrowdingOut,
    compete,
    competition_curve,
    crowding_out,
)
from invlend.config import (
    Collateral,
    Equity,
    FundingCycle,
    InputError,
    Linkage,
    Loan,
    Market,
    Regime,
    RiskPool,
    RiskShare,
    Scenario,
    Screening,
    Stage,
    Structure,
    Warrant,
)
from invlend.diligence import VisitValue, visit_value
from invlend.engine import find_tilt, simulate
from invlend.menu import MenuEntry, ProductMenu, product_menu, term_grid
from invlend.report import write_report
from invlend.results import Comparison, Outcomes, SimulationResult, StructureResult, Summary
from invlend.store import ResultFileError, load
from invlend.structures import default_structures, pure_loan, vc_linked, warrant_loan
from invlend.sweep import (
    Breakeven,
    PricingTable,
    SweepResult,
    breakeven,
    pricing_table,
    sensitivity,
    sweep,
)
from invlend.tail import Tilt

__all__ = [
    "Attribution",
    "Breakeven",
    "Calibration",
    "Cohort",
    "Collateral",
    "Comparison",
    "Competition",
    "CompetitionCurve",
    "CrowdingOut",
    "Equity",
    "Event",
    "FundingCycle",
    "IncentiveView",
    "InputError",
    "Linkage",
    "Loan",
    "Market",
    "MenuEntry",
    "Outcomes",
    "PricingTable",
    "ProductMenu",
    "Regime",
    "ResultFileError",
    "RiskPool",
    "RiskShare",
    "Scenario",
    "Screening",
    "SimulationResult",
    "Stage",
    "Structure",
    "StructureResult",
    "Summary",
    "SweepResult",
    "TargetSet",
    "Tilt",
    "VisitValue",
    "Warrant",
    "__version__",
    "attribute",
    "attribute_run",
    "breakeven",
    "calibrate",
    "calibration_report",
    "capital",
    "cohort",
    "compete",
    "competition_curve",
    "crowding_out",
    "default_structures",
    "find_tilt",
    "first_year_profit",
    "incentives",
    "load",
    "load_targets",
    "plotting",
    "pricing_table",
    "product_menu",
    "pure_loan",
    "sensitivity",
    "simulate",
    "sweep",
    "target_sets",
    "term_grid",
    "vc_linked",
    "visit_value",
    "warrant_loan",
    "write_report",
]
