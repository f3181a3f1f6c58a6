"""Run dl4mic commands from Fiji's menu scripts: progress in the status bar, Esc cancels.

In classic Fiji (Jython) the `dl4mic` command recorded by `dl4mic fiji install`
runs as a subprocess with `--progress json`; in Fiji's Python mode (CPython with
dl4mic importable) the dl4mic API is called in-process with a progress callback
(returning False from it stops dl4mic).
Python 2.7/3 common subset only.
"""

import json
import os
import subprocess
import sys
import threading

try:
    import Queue as queue  # Jython 2.7
except ImportError:
    import queue

from ij import IJ
from ij.gui import GenericDialog

import dl4mic_boxes
import dl4mic_ij

CONFIG_NAME = "dl4mic-fiji.json"
SPECS_NAME = "dl4mic-specs.json"
# The first argument of each command is positional; the rest are --options.
POSITIONAL = {"train": "network", "check-data": "network", "qc": "model", "predict": "model", "export": "model"}
# Request keys whose API keyword differs from the CLI option (--author is repeatable; the API takes a list).
API_NAMES = {"author": "authors"}
# Commands that report progress (--progress json on the CLI, callback= in the API).
PROGRESS_COMMANDS = ("train", "qc", "predict")
USER_ERRORS = (dl4mic_ij.BridgeError, dl4mic_boxes.BoxesError)


def _here():
    return os.path.dirname(os.path.abspath(__file__))


def config():
    """How to call dl4mic: $DL4MIC_COMMAND (a JSON list or a path), else what `dl4mic fiji install` recorded."""
    env = os.environ.get("DL4MIC_COMMAND")
    if env:
        return {"command": json.loads(env) if env.strip().startswith("[") else [env]}
    path = os.path.join(_here(), CONFIG_NAME)
    if os.path.isfile(path):
        handle = open(path)
        try:
            return json.load(handle)
        finally:
            handle.close()
    return {"command": ["dl4mic"]}


def _api():
    """The dl4mic module when this runs in CPython with dl4mic importable (Fiji's Python mode), else None."""
    if sys.platform.startswith("java") or os.environ.get("DL4MIC_FIJI_MODE", "auto") == "cli":
        return None
    try:
        import dl4mic
        return dl4mic
    except ImportError:
        return None


def cli_args(command, request):
    """`dl4mic` argv for a request: the positional first, then --options; True booleans are flags."""
    request = dict(request)
    args = [command]
    if command in POSITIONAL:
        args.append(str(request.pop(POSITIONAL[command])))
    for key in sorted(request):
        value = request[key]
        option = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            args.append(option)
        elif isinstance(value, dict):
            for name in sorted(value):
                args += ["--param", "%s=%s" % (name, _text(value[name]))]
        elif isinstance(value, (list, tuple)):  # a repeatable option
            for item in value:
                args += [option, str(item)]
        else:
            args += [option, str(value)]
    return args


def _text(value):
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


class StatusBar(object):
    """Shows progress events (the dicts of `--progress json`) in Fiji's status and progress bars."""

    def __init__(self, title):
        self.title, self.total, self.count = title, 0, 0

    def __call__(self, event):
        kind = event.get("event", "")
        if kind == "start":
            self.total = int(event.get("total") or 0)
            IJ.showStatus("%s: %s" % (self.title, event.get("desc", "started")))
        elif "epoch" in event and "epochs" in event:
            text = "%s: epoch %s/%s" % (self.title, event["epoch"], event["epochs"])
            for key in ("loss", "val_loss"):
                if event.get(key) is not None:
                    text += "  %s %.4g" % (key, float(event[key]))
            self._show(text, int(event["epoch"]), int(event["epochs"]))
        elif kind == "done":
            IJ.showProgress(1.0)
            IJ.showStatus("%s: done" % self.title)
        elif kind:  # one step per image (qc_image with done/total, predict's image events)
            self.count = int(event.get("done", self.count + 1))
            self.total = int(event.get("total", self.total))
            name = event.get("image") or os.path.basename(str(event.get("file", "")))
            self._show("%s: %d/%d %s" % (self.title, self.count, self.total, name), self.count, self.total)

    def _show(self, text, done, total):
        IJ.showStatus(text)
        if total > 0:
            IJ.showProgress(done, total)


def run(command, title, **request):
    """Run a dl4mic command; True when it finished, False when cancelled with Esc; user errors raise BridgeError."""
    IJ.resetEscape()
    api = _api()
    if api is not None:
        return _run_api(api, command, title, request)
    return _run_cli(command, title, request)


def _run_api(api, command, title, request):
    status = StatusBar(title)

    def callback(event):
        status(event)
        return not IJ.escapePressed()  # False asks dl4mic to stop
    function = getattr(api, command.replace("-", "_"))
    kwargs = dict((API_NAMES.get(k, k), v) for k, v in request.items() if v is not None)
    if command in PROGRESS_COMMANDS:
        kwargs.update(progress="none", callback=callback)
    try:
        function(**kwargs)
    except api.UserError as exc:
        raise dl4mic_ij.BridgeError(str(exc))
    except Exception as exc:
        if type(exc).__name__ != "Cancelled":
            raise
        IJ.showStatus("%s: cancelled" % title)
        return False
    return True


def _pump(stream, sink, tag):
    for line in iter(stream.readline, b""):
        sink.put((tag, line))
    sink.put((tag, None))


def _run_cli(command, title, request):
    argv = list(config()["command"]) + cli_args(command, request)
    if command in PROGRESS_COMMANDS:
        argv += ["--progress", "json"]
    IJ.log("dl4mic: " + " ".join(argv))
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError:
        raise dl4mic_ij.BridgeError("The dl4mic command %s cannot be started; run `dl4mic fiji install --fiji "
                                    "PATH/Fiji.app` from the Python environment that has dl4mic." % argv[0])
    status, lines = StatusBar(title), queue.Queue()
    for stream, tag in ((proc.stdout, "out"), (proc.stderr, "err")):
        thread = threading.Thread(target=_pump, args=(stream, lines, tag))
        thread.daemon = True
        thread.start()
    open_streams, errors = 2, []
    while open_streams:
        if IJ.escapePressed():
            proc.terminate()
            proc.wait()
            IJ.showStatus("%s: cancelled" % title)
            IJ.log("dl4mic: %s cancelled" % command)
            return False
        try:
            tag, line = lines.get(True, 0.1)
        except queue.Empty:
            continue
        if line is None:
            open_streams -= 1
            continue
        line = line.decode("utf-8", "replace").rstrip() if isinstance(line, bytes) else line.rstrip()
        if tag == "err":
            errors.append(line)
        elif line.startswith("{"):
            try:
                status(json.loads(line))
            except ValueError:
                IJ.log(line)
        elif line:
            IJ.log(line)
    code = proc.wait()
    if code == 0:
        return True
    message = [e for e in errors if e.strip()]
    if code == 2 and message:  # a user error: the CLI's one sentence, without its "error: " prefix
        last = message[-1]
        raise dl4mic_ij.BridgeError(last[len("error: "):] if last.startswith("error: ") else last)
    raise dl4mic_ij.BridgeError("dl4mic %s failed (exit code %d): %s" % (command, code, " | ".join(message[-3:])))


def report(title, error):
    """Show a user error in the log and in a dialog (printed when ImageJ has no window)."""
    IJ.log("dl4mic %s: %s" % (title, error))
    IJ.error("dl4mic " + title, str(error))


# --- network parameters (the spec's basic parameters, as a dialog) ---

def load_specs():
    """{network: {title, summary, parameters}}: recorded at install, else read from dl4mic itself."""
    path = os.path.join(_here(), SPECS_NAME)
    if os.path.isfile(path):
        handle = open(path)
        try:
            return json.load(handle)
        finally:
            handle.close()
    from dl4mic.fiji.install import specs_for_fiji
    return specs_for_fiji()


def ask_parameters(network, specs=None):
    """A dialog with the network's basic parameters, filled with the defaults; None when cancelled."""
    specs = specs or load_specs()
    if network not in specs:
        raise dl4mic_ij.BridgeError("Unknown network %s; choose one of %s (re-run `dl4mic fiji install` after "
                                    "updating dl4mic)." % (network, ", ".join(sorted(specs))))
    spec = specs[network]
    dialog = GenericDialog("dl4mic train: " + spec["title"])
    dialog.addMessage(spec["summary"])
    dialog.addHelp(parameters_help(spec))  # the Help button: each parameter's help text from the spec
    for p in spec["parameters"]:
        if p.get("choices"):
            dialog.addChoice(p["name"], [str(c) for c in p["choices"]], str(p["default"]))
        elif p["type"] == "bool":
            dialog.addCheckbox(p["name"], bool(p["default"]))
        elif p["type"] in ("int", "float"):
            dialog.addNumericField(p["name"], float(p["default"]), _decimals(p))
        else:
            dialog.addStringField(p["name"], str(p["default"]), 20)
    dialog.showDialog()
    if dialog.wasCanceled():
        return None
    values = {}
    for p in spec["parameters"]:
        if p.get("choices"):
            choice = dialog.getNextChoice()
            values[p["name"]] = [c for c in p["choices"] if str(c) == choice][0]
        elif p["type"] == "bool":
            values[p["name"]] = bool(dialog.getNextBoolean())
        elif p["type"] == "int":
            values[p["name"]] = int(round(dialog.getNextNumber()))
        elif p["type"] == "float":
            values[p["name"]] = float(dialog.getNextNumber())
        else:
            values[p["name"]] = str(dialog.getNextString())
    return values


def _html(text):
    return ("%s" % text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def parameters_help(spec):
    """HTML for the parameter dialog's Help button: the network's summary, then each basic parameter's
    help text, default and range or choices (ImageJ shows a text starting with <html> in a window)."""
    rows = []
    for p in spec["parameters"]:
        limits = ""
        if p.get("choices"):
            limits = "; one of " + ", ".join(_html(c) for c in p["choices"])
        elif p.get("range"):
            limits = "; from %s to %s" % tuple(_html(v) for v in p["range"])
        rows.append("<dt><b>%s</b> (default %s%s)</dt><dd>%s</dd>" % (_html(p["name"]), _html(p["default"]), limits,
                                                                     _html(p.get("help") or "")))
    return "<html><h3>%s</h3><p>%s</p><dl>%s</dl></html>" % (_html(spec["title"]), _html(spec["summary"]),
                                                            "".join(rows))


def _decimals(p):
    if p["type"] == "int":
        return 0
    text = "%.10f" % float(p["default"])
    return max(len(text.rstrip("0").split(".")[1]), 1)
