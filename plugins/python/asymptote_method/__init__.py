"""asymptote_method turns Python (for example PyTorch) training code into an
asymptote method plugin, the Python counterpart of the Go SDK plugins/sdk.

Subclass Method, implement info() and run(request, report, cancelled), and
call serve() from the plugin's main::

    from asymptote_method import Info, Method, ParamInfo, serve

    class Line(Method):
        def info(self):
            return Info("line", "1", "fits a line", [ParamInfo("steps", "int", 100)])

        def run(self, request, report, cancelled):
            steps = request.int("steps", 100, 1, 10**6)
            for i in range(steps):
                cancelled.check()
                ...
                report(i, {"train_loss": loss})
            return {"val_loss": loss}

    if __name__ == "__main__":
        serve(Line())

It needs only Debian's python3-grpcio and python3-protobuf; the generated
stubs are committed under _pb (plugins/python/generate.sh regenerates them).
See docs/plugins.md, "Writing a method in Python (PyTorch)".
"""

from .api import (
    METRIC_EPOCHS,
    METRIC_FLOPS,
    METRIC_MEMBERS,
    METRIC_PARAMS,
    METRIC_TOKENS,
    METRIC_TRAIN_LOSS,
    METRIC_UNIQUE_TOKENS,
    METRIC_VAL_LOSS,
    CancelEvent,
    Cancelled,
    Checkpoint,
    Info,
    Method,
    NoCheckpoints,
    ParamError,
    ParamInfo,
    Preempted,
    Report,
    TrialRequest,
)
from .log import logger
from .server import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, PROTOCOL_VERSION, serve

__all__ = [
    "METRIC_EPOCHS", "METRIC_FLOPS", "METRIC_MEMBERS", "METRIC_PARAMS", "METRIC_TOKENS",
    "METRIC_TRAIN_LOSS", "METRIC_UNIQUE_TOKENS", "METRIC_VAL_LOSS",
    "CancelEvent", "Cancelled", "Checkpoint", "Info", "Method", "NoCheckpoints", "ParamError", "ParamInfo", "Preempted", "Report", "TrialRequest",
    "logger", "serve", "MAGIC_COOKIE_KEY", "MAGIC_COOKIE_VALUE", "PROTOCOL_VERSION",
]
