"""Sample app for the local host's queue tests: records every delivery in module-level lists."""

import os
import threading

import azure.functions as func

app = func.FunctionApp()

_lock = threading.Lock()
received: list[dict[str, object]] = []
failures: list[int] = []
flaky: list[int] = []
held: list[int] = []
hold_started = threading.Event()
hold_release = threading.Event()


def _record(name: str, msg: func.QueueMessage) -> None:
    with _lock:
        received.append(
            {
                "function": name,
                "id": msg.id,
                "body": msg.get_body(),
                "dequeue_count": msg.dequeue_count,
                "insertion_time": msg.insertion_time,
            }
        )


@app.queue_trigger(arg_name="msg", queue_name="%OK_QUEUE%", connection="AzureWebJobsStorage")
def record(msg: func.QueueMessage) -> None:
    _record("record", msg)


@app.queue_trigger(arg_name="msg", queue_name="%FAIL_QUEUE%", connection="AzureWebJobsStorage")
def always_fails(msg: func.QueueMessage) -> None:
    with _lock:
        failures.append(int(msg.dequeue_count or 0))
    raise RuntimeError(f"cannot handle {msg.get_body()!r}")


@app.queue_trigger(arg_name="msg", queue_name="%FLAKY_QUEUE%", connection="AzureWebJobsStorage")
def fails_once(msg: func.QueueMessage) -> None:
    with _lock:
        flaky.append(int(msg.dequeue_count or 0))
    if msg.dequeue_count == 1:
        raise RuntimeError("first attempt fails")


@app.queue_trigger(arg_name="msg", queue_name="%HOLD_QUEUE%", connection="AzureWebJobsStorage")
def hold(msg: func.QueueMessage) -> None:
    """Runs until released (or HOLD_SECONDS pass): for shutdown and visibility-renewal tests."""
    with _lock:
        held.append(int(msg.dequeue_count or 0))
    hold_started.set()
    hold_release.wait(float(os.environ.get("HOLD_SECONDS", "30")))
