"""Triggers of ingestion: the fan-out timer, the pull queue, the retention timer. Wiring only."""

from __future__ import annotations

import azure.functions as func

from core.runtime import get_runtime
from ingestion.fanout import run_fanout
from ingestion.hostconfig import max_dequeue_count
from ingestion.pull import Delivery, run_pull
from ingestion.retention import run_retention

bp = func.Blueprint()


@bp.timer_trigger(schedule="%FANOUT_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def fanout(timer: func.TimerRequest) -> None:
    rt = get_runtime()
    run_fanout(rt.connector, rt.subscriptions, rt.arm, rt.pull_queue, rt.clock)


@bp.queue_trigger(arg_name="msg", queue_name="%PULL_QUEUE%", connection="AzureWebJobsStorage")
def pull(msg: func.QueueMessage) -> None:
    delivery = Delivery(msg.id, msg.dequeue_count or 1, max_dequeue_count())
    run_pull(get_runtime().pull, msg.get_body(), delivery)


@bp.timer_trigger(schedule="%RETENTION_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def retention(timer: func.TimerRequest) -> None:
    rt = get_runtime()
    run_retention(rt.subscriptions, rt.activities, rt.clock, rt.settings)
