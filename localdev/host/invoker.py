"""Run user functions as the Python worker does, write their outputs, and record every invocation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions import _abc as func_abc

from localdev.host.hostjson import QueuesOptions
from localdev.host.loader import LoadedFunction, OutputBinding
from localdev.host.models import FAILED, SUCCEEDED, TIMER_TRIGGER, Invocation, InvocationLog

logger = logging.getLogger(__name__)


class AsyncRunner:
    """One event loop in its own thread, shared by every async function (as in the Python worker)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._loop is not None:
            return
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="localhost-asyncio", daemon=True)
        self._thread.start()
        ready.wait()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if self._loop is None:
            self.start()
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()
        self._loop = None
        self._thread = None


class Out(func.Out[Any]):
    """The object an output-binding parameter receives."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class _TraceContext(func_abc.TraceContext):
    def __init__(self) -> None:
        self._parent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(func_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


class Context(func.Context):
    """The `context` argument."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._tls = threading.local()
        self._tls.invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._tls

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> func_abc.TraceContext:
        return _TraceContext()

    @property
    def retry_context(self) -> func_abc.RetryContext:
        return _RetryContext()


@dataclass
class InvocationResult:
    invocation: Invocation
    http_output: Any = None  # the HTTP output binding's value (HTTP triggers)
    exception: BaseException | None = field(default=None, repr=False)

    @property
    def succeeded(self) -> bool:
        return self.exception is None


def _text(body: str | bytes) -> str:
    return body if isinstance(body, str) else body.decode("utf-8")


def _messages(value: Any) -> Iterator[str | bytes]:
    """The queue messages an output value stands for."""
    if value is None:
        return
    if isinstance(value, str | bytes):
        yield value
    elif isinstance(value, func_abc.QueueMessage):
        yield _text(value.get_body())
    elif isinstance(value, Iterable) and not isinstance(value, dict):
        for item in value:
            if isinstance(item, str | bytes):
                yield item
            elif isinstance(item, func_abc.QueueMessage):
                yield _text(item.get_body())
            else:
                raise TypeError(f"a queue output list may hold str, bytes or QueueMessage, not {type(item).__name__}")
    else:
        raise TypeError(f"a queue output takes str, bytes, QueueMessage or a list of them, not {type(value).__name__}")


class Invoker:
    """Runs invocations, counts the ones in progress, and logs each as the Functions host does."""

    def __init__(
        self,
        log: InvocationLog,
        queues: QueuesOptions,
        function_directory: str,
        on_enqueued: Callable[[str, str], None] | None = None,
        function_timeout: float | None = None,
    ) -> None:
        self.log = log
        self.function_timeout = function_timeout
        self.queues = queues
        self.function_directory = function_directory
        self.on_enqueued = on_enqueued
        self.runner = AsyncRunner()
        self._cond = threading.Condition()
        self._running = 0
        self._pending = 0
        self._activity = 0

    # -- bookkeeping -------------------------------------------------------------------------

    @property
    def busy(self) -> int:
        """Invocations accepted or running."""
        with self._cond:
            return self._running + self._pending

    @property
    def activity(self) -> int:
        """A counter that moves whenever an invocation is accepted, starts or ends."""
        with self._cond:
            return self._activity

    def accept(self) -> None:
        """Count an invocation that will start soon (an admin call), so the host is not idle meanwhile."""
        with self._cond:
            self._pending += 1
            self._activity += 1

    def wait_until_done(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._running + self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    @contextlib.contextmanager
    def _counted(self, accepted: bool) -> Iterator[None]:
        with self._cond:
            if accepted:
                self._pending -= 1
            self._running += 1
            self._activity += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._activity += 1
                self._cond.notify_all()

    # -- invoking ----------------------------------------------------------------------------

    def invoke(
        self,
        fn: LoadedFunction,
        trigger_value: Any,
        *,
        reason: str,
        invocation_id: str | None = None,
        accepted: bool = False,
        message_id: str | None = None,
        dequeue_count: int | None = None,
    ) -> InvocationResult:
        """Run one invocation now, in this thread (async functions on the shared loop)."""
        invocation_id = invocation_id or str(uuid.uuid4())
        with self._counted(accepted):
            # A timer never runs concurrently with itself, as under the Functions host's singleton lock.
            lock = fn.lock if fn.info.trigger == TIMER_TRIGGER else contextlib.nullcontext()
            with lock:
                return self._run(fn, trigger_value, reason, invocation_id, message_id, dequeue_count)

    def _run(
        self,
        fn: LoadedFunction,
        trigger_value: Any,
        reason: str,
        invocation_id: str,
        message_id: str | None,
        dequeue_count: int | None,
    ) -> InvocationResult:
        logger.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", fn.name, reason, invocation_id)
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        kwargs: dict[str, Any] = {fn.info.binding_name: trigger_value}
        outs = {o.name: Out() for o in fn.outputs if o.name != "$return"}
        kwargs.update(outs)
        if fn.has_context:
            kwargs["context"] = Context(invocation_id, fn.name, self.function_directory)
        http_output: Any = None
        error: BaseException | None = None
        try:
            call = fn.user_function(**kwargs)
            returned = self.runner.run(call) if fn.is_async else call
            for output in fn.outputs:
                value = returned if output.name == "$return" else outs[output.name].get()
                if output.type == "http":
                    if value is not None and not isinstance(value, str | func_abc.HttpResponse):
                        raise TypeError(
                            f"an HTTP function must return azure.functions.HttpResponse or str, "
                            f"not {type(value).__name__}"
                        )
                    http_output = value
                else:
                    self._write_queue(output, value)
        except Exception as exc:  # noqa: BLE001 - a failing function is an outcome, as in the worker
            error = exc
        duration = time.perf_counter() - t0
        invocation = Invocation(
            function=fn.name,
            trigger=fn.info.trigger,
            invocation_id=invocation_id,
            started=started,
            duration=duration,
            outcome=SUCCEEDED if error is None else FAILED,
            error=None if error is None else f"{type(error).__name__}: {error}",
            reason=reason,
            message_id=message_id,
            dequeue_count=dequeue_count,
        )
        if error is None:
            logger.info(
                "Executed 'Functions.%s' (Succeeded, Trigger=%s, Id=%s, Duration=%dms)",
                fn.name, fn.info.trigger, invocation_id, duration * 1000,
            )
        else:
            logger.error(
                "Executed 'Functions.%s' (Failed, Trigger=%s, Id=%s, Duration=%dms)",
                fn.name, fn.info.trigger, invocation_id, duration * 1000,
                exc_info=(type(error), error, error.__traceback__),
            )
        timeout = self.function_timeout
        if timeout is not None and duration > timeout:
            logger.warning(
                "'Functions.%s' ran %.0f s, longer than functionTimeout (%.0f s): the Functions host would "
                "have cancelled it", fn.name, duration, timeout,
            )
        self.log.append(invocation)
        return InvocationResult(invocation, http_output, error)

    def _write_queue(self, output: OutputBinding, value: Any) -> None:
        messages = list(_messages(value))
        if not messages:
            return
        assert output.account is not None and output.queue_name is not None
        encoding = self.queues.message_encoding
        text_client = output.account.queue(output.queue_name, encoding)
        binary_client = output.account.queue(output.queue_name, encoding, binary=True)
        for message in messages:
            if isinstance(message, bytes) and encoding == "none":
                message = message.decode("utf-8")
            client = binary_client if isinstance(message, bytes) else text_client
            try:
                client.send_message(message)
            except ResourceNotFoundError:
                with contextlib.suppress(ResourceExistsError):
                    client.create_queue()
                client.send_message(message)
        if self.on_enqueued is not None:
            self.on_enqueued(output.account.key, output.queue_name)
