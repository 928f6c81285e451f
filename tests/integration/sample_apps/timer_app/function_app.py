"""Sample app for the local host's timer tests: records every firing in module-level lists."""

import threading
import time

import azure.functions as func

app = func.FunctionApp()

ticks: list[func.TimerRequest] = []
manual_runs: list[func.TimerRequest] = []
startup_runs: list[func.TimerRequest] = []
slow_overlaps: list[int] = []
_running = threading.Semaphore(1)


@app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer", use_monitor=False)
def tick(timer: func.TimerRequest) -> None:
    ticks.append(timer)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", use_monitor=False)
def manual(timer: func.TimerRequest) -> None:
    manual_runs.append(timer)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True, use_monitor=False)
def on_startup(timer: func.TimerRequest) -> None:
    startup_runs.append(timer)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", use_monitor=False)
def slow(timer: func.TimerRequest) -> None:
    # Records 1 if another run of this timer was in progress: the host must never overlap them.
    free = _running.acquire(blocking=False)
    slow_overlaps.append(0 if free else 1)
    time.sleep(0.3)
    if free:
        _running.release()
