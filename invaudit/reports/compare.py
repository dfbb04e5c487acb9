"""CE vs iCE (or any set of models) side by side: Table 2's layout and Fig. 6's panels.

Every model is audited with the same suite and seed, so the metamers and
interpolations of all models start from the same test pairs and the figure
compares like with like.  The tables hold strings ready to render (every rate
with its exact 95 % interval, every quantity under a readable name); the CSV
holds the raw numbers with their sample counts and interval bounds under the
raw keys a gate reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from ..attacks import ATTACKS
from ..attacks.declaration import Attack, Readout
from ..attacks.metamer import radii as metamer_radii
from ..errors import ConfigError
from ..zoo import SELECTOR_PREFIX, is_zoo_selector
from .formats import fmt_rate, fmt_value
from .intervals import rate_interval
from .render_md import headline_specs, mark_not_meaningful, ordered_keys, void_reasons
from .runner import SuiteRun

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COMPARE_SCHEMA = "invaudit.compare"
#: Columns per model in the side-by-side figures (they get wide quickly).
FIGURE_EXAMPLES = 4
TABLE2 = "Table 2 layout: % error of the logit classifier and of a fresh nuisance probe"
AUDIT = "Invariance and sensitivity, side by side"


def labels_for(paths: Sequence[str], given: Sequence[str]) -> list[str]:
    """One short, unique, file-system-safe label per model (``--label``, the file stem,
    NAME for ``zoo:NAME``, the function's name for ``py:package.module:function``)."""
    if given and len(given) != len(paths):
        raise ConfigError(f"--label given {len(given)} times for {len(paths)} models")
    labels = list(given) or [_default_label(str(p)) for p in paths]
    for label in labels:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", label):
            raise ConfigError(
                f"label {label!r}: use letters, digits and _ . + - (it names a folder)"
            )
    if len(set(labels)) != len(labels):
        raise ConfigError(f"labels must differ, got {', '.join(labels)} (set --label)")
    return labels


def _default_label(path: str) -> str:
    if is_zoo_selector(path):
        return path.removeprefix(SELECTOR_PREFIX)
    if path.startswith("py:"):
        return path.rsplit(":", 1)[-1]
    return re.sub(r"\.(pt|pth|ckpt|pt2)$", "", path.split("/")[-1])


LONG_COLUMNS = ["model", "quantity", "readout", "value", "n", "low", "high"]


def _readouts() -> list[Readout]:
    """Every registered attack's Table 2 cells, in registry order."""
    return [r for attack in ATTACKS.values() for r in attack.readouts]


def _is_rate(quantity: str) -> bool:
    """Whether a :func:`long_table` quantity is a rate (a share with an interval)."""
    if quantity in ("clean_accuracy", "warnings"):
        return quantity == "clean_accuracy"
    method, dot, rest = quantity.partition(".")
    if dot:
        attack = ATTACKS.get(method)
        return attack is not None and rest.partition("[")[0] in attack.rates
    return any(
        r.metric in a.rates for a in ATTACKS.values() for r in a.readouts if r.quantity == quantity
    )


def _count(attack: Attack, record: Mapping[str, Any], metric: str) -> Any:
    """The sample count behind ``metric``: the one its rate declares, else the attack's n."""
    count = attack.rates.get(metric, "n")
    return record["metrics"].get(count) if count != "n" else record.get("n")


def _attack_rows(report: Mapping[str, Any]) -> list[tuple[str, str, str, Any, Any]]:
    """``(part, quantity, readout, value, n)`` of every compared number the report's
    attacks declare: part ``table2`` for their Table 2 cells, ``audit`` for their
    ``compare=True`` headline rows (one per key of a map)."""
    rows = []
    for method, record in report["attacks"].items():
        attack = ATTACKS.get(method)
        if attack is None:  # a method this invaudit does not know: nothing declared
            continue
        metrics = record["metrics"]
        for r in attack.readouts:
            n = _count(attack, record, r.metric)
            rows.append(("table2", r.quantity, r.readout, metrics.get(r.metric), n))
        for spec in attack.headline:
            if not spec.compare:
                continue
            value, n = metrics.get(spec.metric), _count(attack, record, spec.metric)
            if isinstance(value, Mapping):
                rows += [
                    ("audit", f"{method}.{spec.metric}[{key}]", "decision", value[key], n)
                    for key in ordered_keys(value)
                ]
            else:
                rows.append(("audit", f"{method}.{spec.metric}", "decision", value, n))
    return rows


def long_table(reports: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Every compared number, one row each: model, quantity, readout, value, n, and for a
    rate the bounds of its exact 95 % interval (``low``, ``high``).

    Per model: the Table 2 cells its attacks declare, its clean accuracy, the headline
    rows its attacks mark ``compare=True`` (in the report's order), its warning count.
    """
    rows = []
    for label, report in reports.items():
        model = report["model"]
        attack_rows = _attack_rows(report)
        ordered = [
            *(r[1:] for r in attack_rows if r[0] == "table2"),
            ("clean_accuracy", "decision", model["clean_accuracy"], model["clean_accuracy_n"]),
            *(r[1:] for r in attack_rows if r[0] == "audit"),
            ("warnings", "report", len(report["warnings"]), None),
        ]
        for quantity, readout, value, n in ordered:
            interval = rate_interval(value, n) if _is_rate(quantity) else None
            rows.append(
                {"model": label, "quantity": quantity, "readout": readout, "value": value,
                 "n": n, "low": interval and interval["low"], "high": interval and interval["high"]}
            )  # fmt: skip
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


def _cell(quantity: str, value: Any, n: Any = None) -> str:
    if not _is_rate(quantity):
        return fmt_value(value)
    return fmt_rate(value, None if pd.isna(value) else rate_interval(value, n))


def quantity_label(quantity: str) -> str:
    """A :func:`long_table` quantity as the headline names it: ``metamer.invariance_success_rate``
    reads ``metamer invariance success``, ``pgd-linf.robust_accuracy[0.1]`` reads
    ``pgd-linf robust accuracy @ ε=0.1``."""
    if quantity == "warnings":
        return "warnings (listed below)"
    method, dot, rest = quantity.partition(".")
    if not dot:
        return quantity.replace("_", " ")
    metric, _, key = rest.partition("[")
    for spec in headline_specs(method):
        if spec.metric == metric:
            return f"{method} {spec.label.format(key=key.rstrip(']') or '?')}"
    return f"{method} {rest.replace('_', ' ')}"


def quantity_better(quantity: str) -> str:
    """Which direction is good for the model (the headline's ``better`` column)."""
    if quantity in ("clean_accuracy",):
        return "higher"
    if quantity == "warnings":
        return "fewer"
    method, _, rest = quantity.partition(".")
    metric = rest.partition("[")[0]
    for spec in headline_specs(method):
        if spec.metric == metric:
            return spec.better
    return ""


def voided_quantities(reports: Mapping[str, Mapping[str, Any]]) -> dict[str, set[str]]:
    """Per model label, the quantities of :func:`long_table` that are oracle rates its
    report's sanity flags make not meaningful (metamers off the data box, F⁻¹ exploding)."""
    voided: dict[str, set[str]] = {}
    for label, report in reports.items():
        for method in void_reasons(report):
            attack = ATTACKS.get(method)
            voided.setdefault(label, set()).update(
                f"{method}.{metric}" for metric in (attack.oracle_rates if attack else ())
            )
    return voided


def display_tables(
    long: pd.DataFrame, voided: Mapping[str, set[str]] | None = None
) -> dict[str, pd.DataFrame]:
    """The two tables ``compare`` prints: Table 2's layout and the audit side by side.

    ``voided`` (from :func:`voided_quantities`) marks a model's oracle rates as not
    meaningful; the notes say why.
    """
    voided = voided or {}

    def cell(label: str, quantity: str, row: pd.DataFrame) -> str:
        value, n = _first(row["value"]), _first(row["n"])
        text = _cell(quantity, value, n)
        if not pd.isna(value) and quantity in voided.get(label, ()):
            return mark_not_meaningful(text)
        return text

    labels = list(dict.fromkeys(long["model"]))
    readouts = _readouts()
    rows = {r.quantity: r.label for r in readouts}  # Table 2's rows, in declared order
    table2 = long[long["quantity"].isin(list(rows))]
    first = pd.DataFrame(
        {
            f"{label} {readout}": [
                cell(label, q, table2[(table2.model == label) & (table2.readout == readout)
                                      & (table2.quantity == q)])
                for q in rows
            ]
            for label in labels
            for readout in dict.fromkeys(r.readout for r in readouts)
        },
        index=pd.Index(list(rows.values()), name="quantity"),
    )
    rest = long[~long.index.isin(table2.index)]
    quantities = list(dict.fromkeys(rest["quantity"]))
    second = pd.DataFrame(
        {
            **{
                label: [
                    cell(label, q, rest[(rest.model == label) & (rest.quantity == q)])
                    for q in quantities
                ]
                for label in labels
            },
            ("better" if "better" not in labels else "better (direction)"): [
                quantity_better(q) for q in quantities
            ],
        },
        index=pd.Index([quantity_label(q) for q in quantities], name="quantity"),
    )
    if table2.empty:  # no report ran the probe (plain CNNs): no Table 2 to lay out
        return {AUDIT: second}
    return {TABLE2: first, AUDIT: second}


def _first(values: pd.Series) -> Any:
    return values.iloc[0] if len(values) else None


def comparison_verdicts(reports: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Each model's verdict paragraph (:func:`invaudit.reports.verdict.verdict_text`)."""
    from .verdict import verdict_text

    return {label: verdict_text(report) for label, report in reports.items()}


def comparison_warnings(
    reports: Mapping[str, Mapping[str, Any]],
) -> dict[str, list[tuple[str, str, str]]]:
    """Each model's warnings as ``(name, method or "", message)``: the texts behind the
    table's counts."""
    from .render_md import warning_items

    return {label: warning_items(report) for label, report in reports.items()}


def comparison_notes(reports: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What a reader needs to weigh the tables: the models, the oracle, sample sizes."""
    notes = []
    for label, report in reports.items():
        m = report["model"]
        notes.append(
            f"{label}: {m['arch']}, loss {m['loss']}, {m['parameters']} parameters, "
            f"sha256 {m['sha256'][:12]}, report in {label}/report.html"
        )
    for label, report in reports.items():
        for method, reasons in void_reasons(report).items():
            notes.append(
                f"{label}: the {method} oracle rates are marked not meaningful: "
                f"{'; '.join(reasons)} (see {label}/report.md, Warnings)."
            )
    first = next(iter(reports.values()))
    notes.append(
        "Logit = the model's own decision argmax z_s; nuisance = a fresh MLP probe on the "
        "frozen z_n (the paper's Table 2 columns)."
    )
    oracle = first.get("oracle")
    if oracle is None:
        notes.append("No oracle: metamer and interpolation oracle rates are n/a (use --oracle).")
    else:
        notes.append(f"Oracle: {oracle.get('description')}")
    notes.append(
        f"Suite {first['suite']['name']}, seed {first['suite']['seed']}; every rate is shown "
        "with its exact (Clopper-Pearson) 95 % interval; compare.csv holds each one's sample "
        "count (column n) and bounds (low, high)."
    )
    return notes


def _side_by_side_rows(
    runs: Mapping[str, SuiteRun], method: str, keys: Sequence[str]
) -> tuple[list[torch.Tensor], list[str]] | None:
    from ..data.classes import class_name

    rows: list[list[torch.Tensor]] = [[] for _ in keys]
    titles: list[str] = []
    for label, run in runs.items():
        result = run.results.get(method)
        if result is None:
            return None
        ex = result.examples
        dataset = run.report.get("model", {}).get("dataset")
        k = min(FIGURE_EXAMPLES, len(ex["label"]))
        for r, key in enumerate(keys):
            rows[r].extend(ex[key][:k])
        titles += [f"{label}: {class_name(dataset, a)}\n→ {class_name(dataset, b)}"
                   for a, b in zip(ex["label"][:k], ex["nuisance_label"][:k], strict=True)]
    return [torch.stack(r) for r in rows], titles


def comparison_figures(runs: Mapping[str, SuiteRun]) -> dict[str, Figure]:
    """Fig. 4 and Fig. 6 with the models' columns side by side (images), radii (vectors)."""
    from ..figures import image_grid_figure

    first = next(iter(runs.values()))
    metamer = first.results.get("metamer")
    if metamer is None:
        return {}
    if metamer.examples["metamer"].dim() != 4:
        return {"compare-metamer_radii": _radii_figure(runs)}
    figures = {}
    met = _side_by_side_rows(runs, "metamer", ("logit_source", "metamer", "nuisance_source"))
    if met is not None:
        figures["compare-metamer"] = image_grid_figure(
            met[0], ["logit source", "metamer", "nuisance source"], column_titles=met[1],
            title="Metamers side by side: z_s from the top row, z_n from the bottom row",
            caption="Column titles: model label: the logit source's class → the nuisance "
            "source's class.",
        )
    interp = first.results.get("interpolate")
    # Side by side only when every model ran it (a CNN beside a fiRevNet has no paths).
    if interp is not None and all("interpolate" in run.results for run in runs.values()):
        steps = interp.examples["paths"].shape[1]
        keys = [f"_path{k}" for k in range(steps)] + ["nuisance_source"]
        for run in runs.values():  # expose each path step under a key of its own
            ex = run.results["interpolate"].examples
            for k in range(steps):
                ex.setdefault(f"_path{k}", ex["paths"][:, k])
        rows = _side_by_side_rows(runs, "interpolate", keys)
        if rows is not None:
            ts = interp.examples["t"].tolist()
            figures["compare-interpolate"] = image_grid_figure(
                rows[0], [f"t={t:.2f}" for t in ts] + ["target x'"], column_titles=rows[1],
                title="Fig. 6 side by side: z_s fixed, z_n interpolated towards the bottom row",
                caption="Column titles: model label: the class of x (z_s kept) → the class of "
                "the target x' (z_n walked to).",
            )
    return figures


def _radii_figure(runs: Mapping[str, SuiteRun]) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2 * len(runs), 2.8), dpi=150)
    axes = fig.subplots(1, len(runs), squeeze=False)[0]
    for ax, (label, run) in zip(axes, runs.items(), strict=True):
        src, met = metamer_radii(run.results["metamer"])
        ax.hist(src, bins=40, alpha=0.5, label="inputs")
        ax.hist(met, bins=40, alpha=0.5, label="metamers")
        ax.set_xscale("symlog")
        ax.set_title(label)
        ax.set_xlabel("radius ‖x‖")
    axes[0].set_ylabel("count")
    axes[0].legend(frameon=False, fontsize="small")
    fig.suptitle("Radii of inputs and their logit metamers, per model")
    fig.tight_layout()
    return fig


def comparison_record(runs: Mapping[str, SuiteRun], long: pd.DataFrame) -> dict[str, Any]:
    """``compare.json``: which reports were compared, the story they tell (null when there
    is none) and every compared number."""
    from .attack_files import json_safe
    from .story import comparison_story

    return json_safe(
        {
            "schema": COMPARE_SCHEMA,
            "schema_version": 1,
            "models": [
                {
                    "label": label,
                    "path": run.report["model"]["path"],
                    "sha256": run.report["model"]["sha256"],
                    "report": f"{label}/report.json",
                }
                for label, run in runs.items()
            ],
            "story": comparison_story({label: run.report for label, run in runs.items()}),
            "rows": long.astype(object).where(long.notna(), None).to_dict(orient="records"),
        }
    )
