"""The `distill` command line: score, evaluate, augment, validate, run and serve.

Bad input of any kind ends in one line on stderr naming what is wrong, exit code 2, and
nothing written. Outputs are written atomically, only after everything succeeded.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

import distill_cli.evaluate  # noqa: F401 - registers `score` and `evaluate` on the app
import distill_cli.export  # noqa: F401 - registers `export` on the app
from distill.config.augment import AugmentConfig, AugmentMethod
from distill.errors import DistillError
from distill_cli.app import app, print_json, progress_bar, quiet_libraries
from distill_cli.progress import stage_progress
from distill_cli.server import UiServer

# `distill augment` takes its defaults and help from the config model, so the CLI and a run config agree.
_AUGMENT = AugmentConfig.model_fields


def _augment_option(name: str, *flags: str, help: str | None = None) -> Any:  # noqa: A002 - typer's name
    return typer.Option(*flags, help=help or _AUGMENT[name].description)


@app.command()
def augment(
    input: Annotated[Path, typer.Argument(help="SQuAD .json/.json.gz, or sentences as .tsv/.csv/.jsonl (.gz).")],
    output: Annotated[Path, typer.Argument(help="Where to write the augmented data (same kind of file).")],
    factor: Annotated[int, _augment_option("factor")] = _AUGMENT["factor"].default,
    method: Annotated[AugmentMethod, _augment_option("method")] = _AUGMENT["method"].default,
    replace_prob: Annotated[float, _augment_option("replace_prob")] = _AUGMENT["replace_prob"].default,
    candidates: Annotated[int, _augment_option("candidates")] = _AUGMENT["candidates"].default,
    seed: Annotated[int, typer.Option(help="Seed for the draws: same seed, same output bytes.")] = 42,
    workers: Annotated[int, _augment_option("workers")] = _AUGMENT["workers"].default,
    original: Annotated[bool, _augment_option("keep_original", "--original/--no-original")] = _AUGMENT[
        "keep_original"
    ].default,
    augment_questions: Annotated[bool, _augment_option("augment_questions")] = _AUGMENT["augment_questions"].default,
    mlm: Annotated[str, _augment_option("mlm")] = _AUGMENT["mlm"].default,
    vectors: Annotated[str, _augment_option("vectors")] = _AUGMENT["vectors"].default,
    vector_vocab_size: Annotated[int | None, _augment_option("vector_vocab_size")] = _AUGMENT[
        "vector_vocab_size"
    ].default,
    mask_ratio: Annotated[float, _augment_option("mask_ratio")] = _AUGMENT["mask_ratio"].default,
    batch_size: Annotated[int, _augment_option("batch_size")] = _AUGMENT["batch_size"].default,
    text_column: Annotated[
        list[str] | None, typer.Option(help="Sentence column(s) to augment (repeatable); default 'sentence'.")
    ] = None,
) -> None:
    """Multiply training data TinyBERT-style: words swapped for likely substitutes, SQuAD answers kept exact."""
    quiet_libraries()
    from pydantic import ValidationError

    from distill.augment.runner import augment_file, detect_kind
    from distill.config import format_validation_error

    try:
        settings = AugmentConfig(
            method=method,
            factor=factor,
            replace_prob=replace_prob,
            candidates=candidates,
            keep_original=original,
            augment_questions=augment_questions,
            mlm=mlm,
            vectors=vectors,
            vector_vocab_size=vector_vocab_size,
            mask_ratio=mask_ratio,
            batch_size=batch_size,
            workers=workers,
        )
    except ValidationError as exc:
        raise DistillError(format_validation_error(exc, "augment").replace("augment: ", "augment: --", 1)) from None
    unit = "paragraph" if detect_kind(input) == "squad" else "row"
    bar = progress_bar(0, unit)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    with bar:
        result = augment_file(input, output, settings, seed=seed, text_columns=text_column, progress=progress)
    typer.echo(f"{output}: {result.summary()}")


@app.command()
def serve(
    configs: Annotated[list[Path], typer.Argument(help="YAML run configs, one deployment each.")],
    cron: Annotated[str | None, typer.Option(help="Cron schedule (UTC), e.g. '0 2 * * *'.")] = None,
) -> None:
    """Serve the configs as Prefect deployments from this process (one machine, no work pool or worker)."""
    from distill_cli.server import connect

    server = connect()  # PREFECT_API_URL, a `distill ui` server, or a temporary one with the UI
    try:
        quiet_libraries()
        from deployments.crashes import ensure_crash_automation
        from deployments.serve import serve_configs

        if server is not None:
            server.wait_healthy()
            typer.echo(f"Prefect UI: {server.url} (deployments under Deployments, their runs under Runs)")
        ensure_crash_automation()
        serve_configs(configs, cron)
    finally:
        if server is not None:
            server.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@app.command()
def ui(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 4200,
) -> None:
    """Start a Prefect server with the UI on 127.0.0.1 that every later `distill run` reports to (Ctrl-C stops it).

    Runs find it by themselves (through $PREFECT_HOME/distill-ui.json) unless PREFECT_API_URL names another
    server. Flow runs whose process dies are marked Crashed here within two minutes.
    """
    from distill_cli.server import find_ui_server, remove_discovery, start_server, write_discovery

    running = find_ui_server()
    if running is not None:
        raise DistillError(f"a distill UI server is already running at {running}")
    server = start_server(port)
    # Ctrl-C is how it stops, even when started from a shell that had SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, _interrupt)
    try:
        server.wait_healthy()
        os.environ["PREFECT_API_URL"] = server.api_url
        from deployments.crashes import ensure_crash_automation

        ensure_crash_automation()
        write_discovery(server)
        typer.echo(f"Prefect UI: {server.url} (later `distill run`s report here; Ctrl-C stops it)")
        code = server.process.wait()
        raise DistillError(f"the Prefect server at {server.url} stopped (exit code {code}; log: {server.log})")
    except KeyboardInterrupt:
        typer.echo("distill ui: stopped", err=True)
    finally:
        remove_discovery()
        server.stop()


@app.command()
def validate(config: Annotated[Path, typer.Argument(help="YAML run config.")]) -> None:
    """Check a run config and print it fully resolved (defaults filled in, ${VAR}s expanded, secrets as ***)."""
    from distill.config import load_config

    # JSON dumps of a config redact secrets (distill.config.base): what is printed is safe to share.
    print_json(load_config(config).model_dump(mode="json"))


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="YAML run config.")],
    # A string, not a Path: a Path would fold s3://bucket into s3:/bucket.
    artifacts: Annotated[
        str | None, typer.Option(help="Artifact root (a folder or s3://bucket/prefix); overrides the config's.")
    ] = None,
    refresh: Annotated[
        list[str] | None,
        typer.Option(
            help="Recompute a stage even if cached (repeatable): a stage's name (distill_tiny-small) or a kind "
            "(evaluate: every evaluation). What follows recomputes only where its input's bytes changed."
        ),
    ] = None,
    summary_json: Annotated[Path | None, typer.Option(help="Write a JSON summary of every stage here.")] = None,
    keep_ui: Annotated[
        bool, typer.Option("--keep-ui", help="Leave the run's temporary Prefect UI up afterwards (Ctrl-C stops it).")
    ] = False,
) -> None:
    """Run the distillation workflow described by CONFIG as a Prefect flow (cached, resumable, monitored).

    The run reports to the server PREFECT_API_URL names, else to a running `distill ui`, else to a temporary
    server with the UI on 127.0.0.1 that lives as long as the run. The UI's address is printed at the start.
    """
    from distill.config import load_config

    # The config first: a typo fails in a moment, before torch and transformers are imported.
    run_config = load_config(config)
    if artifacts is not None:
        run_config = run_config.model_copy(update={"artifact_root": artifacts})
    from distill.stages.identity import stage_ids
    from distill.stages.inputs import STAGE_KINDS

    names = [stage.name for stage in stage_ids(run_config)]
    unknown = sorted(set(refresh or []) - set(STAGE_KINDS) - set(names))
    if unknown:
        raise DistillError(
            f"--refresh: unknown stage {unknown[0]!r} (this run's stages: {', '.join(names)}; "
            f"kinds: {', '.join(STAGE_KINDS)})"
        )
    from distill_cli.server import connect

    # The server boots (~10 s) while torch loads and the inputs are checked; a rejected input stops it.
    server, started = connect(), False
    try:
        quiet_libraries()
        from distill.preflight import preflight

        # Bad data, models or paths fail here in a second (before Prefect is even imported), not minutes in.
        preflight(run_config)
        from deployments.crashes import ensure_crash_automation
        from flows.progressive import progressive_distillation

        if server is not None:
            server.wait_healthy()
            lifetime = "a temporary server, stopped when the run ends" if server.process else "`distill ui`"
            typer.echo(f"Prefect UI: {server.url} ({lifetime}); this run's page is linked below ('View at')")
        ensure_crash_automation()
        started = True
        with stage_progress():  # one live line per running stage on a terminal
            outcome = progressive_distillation(run_config, refresh=list(refresh or []))
    except BaseException as exc:
        if started:
            from prefect.exceptions import TerminationSignal  # Prefect's own SIGTERM handler raises it in the flow

            if isinstance(exc, KeyboardInterrupt | TerminationSignal):
                _exit_interrupted(server)
        if server is not None:
            if keep_ui and started and not isinstance(exc, KeyboardInterrupt):
                from distill.errors import first_line

                typer.echo(f"distill: the run failed: {first_line(exc)}", err=True)
                _hold_ui(server)  # a failed run is what the UI is for
            server.stop()
        raise
    if summary_json is not None:
        from distill.io import atomic_write_json
        from distill.redact import redact

        atomic_write_json(summary_json, redact({"run": run_config.name, **outcome}))
    from distill.stages.plan import task_metric_name

    _print_outcome(outcome, task_metric_name(run_config))
    if server is not None:
        if keep_ui:
            _hold_ui(server)
        server.stop()


def _exit_interrupted(server: UiServer | None) -> None:
    """End an interrupted run (Ctrl-C, `kill`) now. The flow has reported itself Crashed by the time the
    interrupt gets here, but training runs in worker threads that an interrupt never reaches, and Python would
    wait for them to finish (for hours) before exiting. Their checkpoints are on disk: the next run resumes."""
    from distill_cli.server import drain_prefect

    drain_prefect()  # the run's last logs and its Crashed state, before the server (if ours) stops
    if server is not None:
        server.stop()
    typer.echo("distill: interrupted; the run is marked Crashed (run it again to resume)", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _hold_ui(server: UiServer) -> None:
    """Keep a temporary server up until Ctrl-C (or until it stops by itself)."""
    if server.process is None:
        return  # not ours: it stays up anyway
    typer.echo(f"\nPrefect UI still at {server.url} (--keep-ui); Ctrl-C stops it.")
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass


def _print_outcome(outcome: dict, metric: str) -> None:
    typer.echo(f"\n{'stage':<34} status")
    for stage in outcome["stages"]:
        typer.echo(f"{stage['name']:<34} {stage['status']}")
    rows = outcome["leaderboard"]
    header = f"{'model':<24} {'role':<10} {'eval ' + metric:>9} {'vs teacher':>11} {'lift':>8} {'params':>11}"
    typer.echo(f"\n{header} {'p50 ms':>8}")

    def number(value: object, spec: str) -> str:
        width = int("".join(ch for ch in spec.split(".")[0].split(",")[0] if ch.isdigit()) or 0)
        return format(value, spec) if isinstance(value, int | float) else "-".rjust(width)

    for row in rows:
        typer.echo(
            f"{row['model']:<24} {row['role']:<10} {number(row[metric], '9.4f')} "
            f"{number(row['delta_vs_teacher'], '+11.4f')} {number(row['lift_vs_baseline'], '+8.4f')} "
            f"{number(row['parameters'], '11,d')} {number(row['latency_p50_ms'], '8.2f')}"
        )
    teacher = next((row for row in rows if row["role"] == "teacher"), None)
    if teacher is not None:
        typer.echo(f"\nteacher eval {metric}: {teacher[metric]:.4f}")
    _print_sweeps(outcome.get("sweeps", []))


def _print_sweeps(rows: list[dict]) -> None:
    """Each swept stage's chosen trial, its validation score, and the baseline's on the same validation set."""
    for stage in dict.fromkeys(row["stage"] for row in rows):
        trials = [row for row in rows if row["stage"] == stage]
        chosen = next(row for row in trials if row.get("chosen"))
        metric = next(key for key in chosen if key.startswith("validation_"))
        settings = {k: v for k, v in chosen.items() if "." in k and v is not None}
        baseline = next((row.get(metric) for row in trials if row["trial"] == "baseline"), None)
        count = sum(row["trial"] != "baseline" for row in trials)
        line = f"\nsweep {stage}: best of {count} trials is trial {chosen['trial']} ({metric} {chosen[metric]:.4f}"
        line += f"; baseline {baseline:.4f})" if baseline is not None else ")"
        typer.echo(line)
        for name, value in settings.items():
            typer.echo(f"  {name} = {value:g}")


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2, transient failures one line and
    exit code 75 (see distill.errors); a bug keeps its traceback (exit code 1)."""
    # Offline machines: Prefect's telemetry would log failures (and provoke 'database is locked' noise).
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The first temporary server on a fresh PREFECT_HOME migrates its database (~21 s on 2 cores),
    # past Prefect's 20 s default: a first `distill run` on a new machine would fail for nothing.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    # Core messages (e.g. "resuming from checkpoint ...") go to the task run logs in the UI too.
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "distill")
    from deployments.crashes import enable_heartbeats
    from deployments.serve import use_loopback
    from distill.redact import install_log_redaction, redact_text
    from distill_cli.app import ClickException, report_click_error

    use_loopback()  # before Prefect is imported: its settings are read once
    enable_heartbeats()
    # `kill PID` ends a command as Ctrl-C does: a run reports itself Crashed, servers stop, files are removed.
    signal.signal(signal.SIGTERM, _interrupt)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("distill").setLevel(logging.INFO)
    install_log_redaction(*logging.getLogger().handlers)
    args = sys.argv[1:]
    try:
        # Not standalone: click's errors reach us, to be printed as one line rather than click's usage box.
        code = app(args=args, prog_name="distill", standalone_mode=False)
    except ClickException as exc:
        sys.exit(report_click_error(exc, args))
    except typer.Abort:
        typer.echo("distill: aborted", err=True)
        sys.exit(1)
    except DistillError as exc:
        # Messages quote the bad value, which may be a URL with credentials in it.
        typer.echo(f"distill: error: {redact_text(' '.join(str(exc).splitlines()))}", err=True)
        sys.exit(2)
    except Exception as exc:
        from distill.errors import TRANSIENT_EXIT_CODE, first_line, is_transient

        if not is_transient(exc):
            raise  # a bug: its traceback is the report
        # The network or the hub failed, after the stages' own retries: nothing is wrong with the input.
        typer.echo(f"distill: error (transient; run it again to resume): {redact_text(first_line(exc))}", err=True)
        sys.exit(TRANSIENT_EXIT_CODE)
    except KeyboardInterrupt:
        typer.echo("distill: interrupted", err=True)
        sys.exit(130)
    # --help and typer.Exit return their exit code; a command returns None.
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
