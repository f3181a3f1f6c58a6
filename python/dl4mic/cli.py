"""The `dl4mic` command. Training options are generated from the network's spec in model-specs/."""

from __future__ import annotations

import argparse
import errno
import json
import re
import sys
from pathlib import Path

from .errors import UserError

COMMANDS = ("networks", "check-data", "train", "qc", "predict", "export", "profile", "demo", "fiji")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show tracebacks for unexpected errors")


def _progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", choices=["auto", "bar", "json", "none"], default="auto",
                   help="progress bar on a terminal (auto), JSON lines for programs, or nothing")


def _spec_options(p: argparse.ArgumentParser, network: str) -> list[str]:
    """One option per spec parameter (--patch-size, --augment/--no-augment, ...); returns their names."""
    from .specs import load_spec

    spec = load_spec(network)
    group = p.add_argument_group(f"{spec.title} parameters (from model-specs/{spec.name}.yaml)")
    for prm in spec.parameters:
        flag = "--" + prm.name.replace("_", "-")
        extra = f" [{prm.level}; default {prm.default}"
        extra += f"; choices {', '.join(map(str, prm.choices))}]" if prm.choices else (
            f"; range {prm.range[0]}..{prm.range[1]}]" if prm.range else "]")
        if prm.type == "bool":
            group.add_argument(flag, dest=prm.name, action=argparse.BooleanOptionalAction, default=None,
                               help=prm.help + extra)
        else:
            group.add_argument(flag, dest=prm.name, default=None, metavar=prm.type.upper(), help=prm.help + extra)
    return [prm.name for prm in spec.parameters]


def _parse_params(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--param {item!r} must look like NAME=VALUE, e.g. --param depth=3.")
        name, value = item.split("=", 1)
        out[name.strip().replace("-", "_")] = value.strip()
    return out


def build_parser(network: str | None = None) -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="dl4mic", description="Deep learning for microscopists who work in Fiji.")
    parser.add_argument("--version", action="version", version=f"dl4mic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("networks", help="list networks and their tasks")
    _common(p)

    p = sub.add_parser("check-data", help="pair and validate a data set before training")
    p.add_argument("network")
    p.add_argument("--source", required=True, help="folder of input images")
    p.add_argument("--target", help="folder of targets with the same file names")
    p.add_argument("--axes", help="axes of the images (e.g. YX) when they cannot be inferred")
    _common(p)

    p = sub.add_parser("train", help="train a network; writes a model folder",
                       description="Train a network. `dl4mic train NETWORK --help` lists its parameters.")
    p.add_argument("network")
    p.add_argument("--source", help="folder of input images")
    p.add_argument("--target", help="folder of targets with the same file names")
    p.add_argument("--model", required=True, help="model folder to write")
    p.add_argument("--from", dest="from_model", help="model folder or bundle zip to start from (transfer learning)")
    p.add_argument("--resume", action="store_true", help="continue the model's training from its last complete epoch")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="any parameter of the network's spec")
    p.add_argument("--axes", help="axes of the images (e.g. YX) when they cannot be inferred")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: a GPU when there is one)")
    _progress(p)
    _common(p)
    if network:
        _spec_options(p, network)

    p = sub.add_parser("qc", help="score a model against ground truth; writes MODEL/qc/")
    p.add_argument("model")
    p.add_argument("--source", required=True, help="test images")
    p.add_argument("--target", help="ground truth with the same file names (leave out for denoising models "
                                     "such as n2v2d: QC then reports residual statistics)")
    _progress(p)
    _common(p)

    p = sub.add_parser("predict", help="predict images of any size; outputs are named after the inputs")
    p.add_argument("model", help="model folder or bioimage.io bundle zip")
    p.add_argument("--input", required=True, help="image file or folder")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--rois", action="store_true", help="also write ImageJ ROI zips of the objects")
    p.add_argument("--tile", help="tile size in pixels, one number or one per axis such as 32,256,256 (default: "
                                   "1024 in 2D, 64,256,256 in 3D; 0: the whole image at once)")
    p.add_argument("--axes", help="axes of the input images (e.g. ZYX, TYX) when their metadata is missing or wrong")
    p.add_argument("--threshold", type=float,
                   help="probability threshold for masks (default: the QC's best, else the training one)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--device", help="cpu, cuda or cuda:N")
    _progress(p)
    _common(p)

    p = sub.add_parser("export", help="write and validate a bioimage.io bundle for DeepImageJ")
    p.add_argument("model")
    p.add_argument("--output", help="bundle zip to write (default MODEL/export/NAME.bioimage.io.zip)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    p.add_argument("--sample", help="image for the bundle's test/sample tensors and cover (default: a validation image)")
    p.add_argument("--author", action="append", metavar="NAME",
                   help="author named in the bundle, 'Name; Affiliation; ORCID' (repeatable; default: your profile)")
    p.add_argument("--name", help="the model's name in the bundle (default: the network and model folder)")
    p.add_argument("--description", help="what the model does, on which data (the zoo shows it)")
    p.add_argument("--data-description", help="what the training data is, for the README (default: folder names)")
    p.add_argument("--license", help="SPDX licence id (default: your profile's, else the network's)")
    p.add_argument("--zoo", action="store_true",
                   help="package for the bioimage.io Model Zoo: real authors, licence and description required, "
                        "full-determinism test, UPLOAD.md beside the zip")
    _common(p)

    p = sub.add_parser("profile", help="your name, affiliation, ORCID and licence for bundles (asked once)",
                       description="Show or set the profile that `dl4mic export` puts into bundles.")
    p.add_argument("action", choices=["show", "set"])
    p.add_argument("--author", action="append", metavar="'NAME; AFFILIATION; ORCID; EMAIL'",
                   help="an author (repeatable; replaces the saved authors)")
    p.add_argument("--maintainer", action="append", metavar="'NAME; GITHUB_USER'",
                   help="a maintainer for the zoo's upload form (repeatable; replaces the saved ones)")
    p.add_argument("--license", help="SPDX licence id for your models, e.g. CC-BY-4.0 or MIT")
    p.add_argument("--data-citation", action="append", metavar="'TEXT; DOI or URL'",
                   help="a citation of the training data (repeatable; replaces the saved ones)")
    _common(p)

    p = sub.add_parser("demo", help="the whole workflow on the bundled sample data")
    p.add_argument("--workdir", help="folder for the demo's outputs (default ./dl4mic-demo)")
    p.add_argument("--epochs", type=int, help="training epochs (default from the demo)")
    p.add_argument("--overwrite", action="store_true", help="replace a previous demo in the work folder")
    _common(p)

    sub.add_parser("fiji", help="install the Fiji menu scripts; push results to ImageJ (dl4mic fiji --help)",
                   add_help=False)
    return parser


def _network_of(argv: list[str]) -> str | None:
    if len(argv) >= 2 and argv[0] == "train" and not argv[1].startswith("-"):
        return argv[1]
    return None


def run(args: argparse.Namespace, names: list[str]) -> int:
    import dl4mic

    if args.command == "networks":
        for n in dl4mic.networks():
            print(f"{n['name']:<12} {n['task']:<14} {n['title']}")
    elif args.command == "check-data":
        summary = dl4mic.check_data(args.network, args.source, args.target, axes=args.axes)
        d = summary.as_dict()
        print(f"OK: {d['n_pairs']} {'pairs' if args.target else 'images'} for {d['network']} "
              f"(axes {d['axes']}, source {d['source_dtype']}" + (f", target {d['target_dtype']}" if args.target else "")
              + f"); shapes: {', '.join(sorted({'x'.join(map(str, s)) for s in d['shapes']}))}")
        for w in d["warnings"]:
            print(f"warning: {w}")
    elif args.command == "train":
        params = _parse_params(args.param)
        for name in names:
            if getattr(args, name, None) is not None:
                params[name] = getattr(args, name)
        if not args.resume and args.source is None:
            raise UserError("Give --source, the folder of training images (or --resume to continue a model).")
        model = dl4mic.train(args.network, source=args.source, target=args.target, model=args.model,
                             params=params, from_model=args.from_model, resume=args.resume,
                             overwrite=args.overwrite, axes=args.axes, device=args.device, progress=args.progress)
        _print_model(Path(model))
    elif args.command == "qc":
        summary = dl4mic.qc(args.model, args.source, args.target, progress=args.progress)
        qc_dir = Path(args.model) / "qc"
        print(f"QC written to {qc_dir}:")
        for f in sorted(qc_dir.iterdir()):
            print(f"  {f}")
        means = summary.get("means", {}) if isinstance(summary, dict) else {}
        if means:
            print("  means: " + json.dumps(means))
    elif args.command == "predict":
        notes: list[str] = []
        written = dl4mic.predict(args.model, args.input, args.output, rois=args.rois, tile=_tile(args.tile),
                                 overwrite=args.overwrite, threshold=args.threshold, device=args.device,
                                 axes=args.axes, progress=args.progress,
                                 callback=lambda e: notes.extend(e.get("notes", [])) if e.get("event") == "done" else None)
        for note in notes:
            print(f"note: {note}")
        print(f"Predicted {len(written)} image(s) into {args.output}:")
        for paths in written:
            for p in paths.values():
                print(f"  {p}")
    elif args.command == "export":
        path = dl4mic.export(args.model, args.output, overwrite=args.overwrite, sample=args.sample,
                             authors=args.author,
                             zoo=args.zoo, name=args.name, description=args.description,
                             data_description=args.data_description, license=args.license)
        print(f"Bundle written and validated: {path}")
        if args.zoo:
            print(f"Upload guide: {path.with_name('UPLOAD.md')}")
    elif args.command == "profile":
        _profile(args)
    elif args.command == "demo":
        dl4mic.demo(args.workdir, epochs=args.epochs, overwrite=args.overwrite)
    return 0


def _profile(args) -> None:
    from .export.profile import load_profile, parse_citation, parse_person, profile_path, save_profile

    profile = load_profile()
    if args.action == "set":
        if args.author:
            profile["authors"] = [parse_person(a) for a in args.author]
        if args.maintainer:
            profile["maintainers"] = [parse_person(m, ("name", "github_user")) for m in args.maintainer]
        if args.license:
            profile["license"] = args.license
        if args.data_citation:
            profile["data_citations"] = [parse_citation(c) for c in args.data_citation]
        print(f"Profile saved: {save_profile(profile)}")
    import yaml

    print(yaml.safe_dump(profile, sort_keys=False, allow_unicode=True).strip() if profile else
          f"No profile yet ({profile_path()}); set one with `dl4mic profile set --author \"Name; Affiliation; "
          "ORCID\" --license CC-BY-4.0`.")


def _tile(text: str | None):
    """--tile: absent ("auto": the network's default), 0 (the whole image), N, or N,N,N per axis."""
    if text is None:
        return "auto"
    try:
        sizes = [int(v) for v in str(text).replace("x", ",").split(",") if v.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(v < 0 for v in sizes):
        raise UserError(f"--tile {text!r} must be a number of pixels or one per axis like 32,256,256.")
    if sizes == [0]:
        return 0
    return sizes[0] if len(sizes) == 1 else tuple(sizes)


def _print_model(model: Path) -> None:
    from .model_folder import read_model_config

    for note in read_model_config(model).get("notes") or []:
        print(f"note: {note}")
    print(f"Model written to {model}:")
    for rel in ("model.yaml", "weights/best.pt", "weights/last.pt", "checkpoint.pt", "training/log.csv",
                "training/report.pdf"):
        if (model / rel).exists():
            print(f"  {model / rel}")


def _stop_on_sigterm() -> None:
    """Treat SIGTERM (Fiji's Cancel, a cluster's scancel, `kill`) as Ctrl+C: training then marks the model
    folder interrupted after its last complete epoch, so `--resume` continues it."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (dl4mic.cli.main called from a thread)
        pass


def _quiet_libraries() -> None:
    """Libraries' own warnings about a bad file (tifffile's log lines, torch's unpickler notes) would print
    beside dl4mic's one sentence; dl4mic reports the problem itself (--debug shows everything)."""
    import logging
    import warnings

    logging.getLogger("tifffile").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", message=r"Detected pickle protocol", category=UserWarning)


def _disk_full(exc: BaseException | None) -> bool:
    """Whether `exc`, or what caused it, is a full disk: ENOSPC, or a short write as Python's buffered files
    ('N requested and M written') and torch's writers ('file write failed', 'unexpected pos') report it."""
    while exc is not None:
        if isinstance(exc, OSError) and (exc.errno in (errno.ENOSPC, errno.EDQUOT)
                                         or re.search(r"\d+ requested and \d+ written", str(exc))):
            return True
        if isinstance(exc, RuntimeError) and ("file write failed" in str(exc) or "unexpected pos" in str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _disk_full_message(argv: list[str]) -> str:
    """One sentence naming the folder being written: every write is atomic, so nothing before is lost."""
    args = argv[1:]
    folder = next((args[i + 1] for i, a in enumerate(args[:-1]) if a in ("--output", "--model")), None)
    if folder is None:
        folder = next((a for a in args if not a.startswith("-")), ".")
    again = "with --resume " if argv[:1] == ["train"] else ""
    return (f"the disk holding {folder} is full (no space left on device); free space on it and run the command "
            f"again {again}(the files written before are intact).")


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # this process is the dl4mic command
        _stop_on_sigterm()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if not debug:
        _quiet_libraries()
    try:
        if argv[:1] == ["fiji"]:
            from .fiji.cli import main as fiji_main

            return fiji_main(argv[1:])
        network = _network_of(argv)
        names = []
        parser = build_parser(network)
        if network:
            from .specs import load_spec

            names = [prm.name for prm in load_spec(network).parameters]
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 0
        return run(args, names)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; `dl4mic train ... --resume` continues a training from its last complete epoch.",
              file=sys.stderr)
        return 130
    except Exception as exc:  # unexpected: short message unless --debug
        if _disk_full(exc):
            print(f"error: {_disk_full_message(argv)}", file=sys.stderr)
            return 2
        if debug:
            raise
        print(f"dl4mic failed: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
