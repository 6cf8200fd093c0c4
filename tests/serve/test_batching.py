"""MicroBatcher: coalescing, exact splitting, shape groups, errors."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from mlship.serve.batching import MicroBatcher


def run_all(batcher, requests):
    async def main():
        return await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)
    return asyncio.run(main())


def test_each_caller_gets_exactly_its_rows():
    calls = []

    def run(feeds):
        calls.append(len(feeds["x"]))
        return {"y": feeds["x"] * 10, "n": feeds["x"].sum(axis=1)}

    batcher = MicroBatcher(run, max_batch=100, max_wait_ms=20, on_batch=lambda rows: None)
    requests = [{"x": np.full((k, 2), i, dtype=np.float32)} for i, k in enumerate([1, 3, 2, 5, 1], start=1)]
    results = run_all(batcher, requests)
    for i, (req, res) in enumerate(zip(requests, results), start=1):
        assert np.array_equal(res["y"], req["x"] * 10)
        assert res["n"].tolist() == [2.0 * i] * len(req["x"])
    assert calls == [12]


def test_max_batch_and_shape_groups_split_runs():
    calls = []

    def run(feeds):
        calls.append(feeds["x"].shape)
        return {"y": feeds["x"]}

    batcher = MicroBatcher(run, max_batch=4, max_wait_ms=20)
    requests = [{"x": np.zeros((2, 2))}, {"x": np.zeros((2, 3))}, {"x": np.zeros((2, 2))}, {"x": np.zeros((2, 2))}]
    results = run_all(batcher, requests)
    assert [r["y"].shape for r in results] == [(2, 2), (2, 3), (2, 2), (2, 2)]
    assert sorted(calls) == sorted([(4, 2), (2, 3), (2, 2)])


def test_not_batchable_runs_one_by_one():
    calls = []
    batcher = MicroBatcher(lambda f: calls.append(1) or {"y": f["x"]}, batchable=False, max_wait_ms=20)
    run_all(batcher, [{"x": np.zeros((1, 1))}] * 3)
    assert len(calls) == 3


def test_errors_reach_every_caller_of_the_batch_and_serving_goes_on():
    def run(feeds):
        if feeds["x"].max() > 0:
            raise ValueError("boom")
        return {"y": feeds["x"]}

    batcher = MicroBatcher(run, max_wait_ms=20)
    results = run_all(batcher, [{"x": np.ones((1, 1))}, {"x": np.ones((1, 1))}])
    assert all(isinstance(r, ValueError) for r in results)
    assert run_all(batcher, [{"x": np.zeros((1, 1))}])[0]["y"].shape == (1, 1)


def test_output_without_batch_axis_falls_back_to_single_runs():
    batcher = MicroBatcher(lambda f: {"total": np.array(f["x"].sum())}, max_wait_ms=20)
    results = run_all(batcher, [{"x": np.ones((2, 1))}, {"x": np.ones((3, 1))}])
    assert [float(r["total"]) for r in results] == [2.0, 3.0]


def test_a_fast_model_runs_on_the_loop_in_one_batch_of_what_arrived_together():
    calls = []

    def run(feeds):
        calls.append((len(feeds["x"]), threading.current_thread().name))
        return {"y": feeds["x"] + 1}

    batcher = MicroBatcher(run, max_batch=100)  # no max_wait: nothing is held open
    first = run_all(batcher, [{"x": np.zeros((1, 2))}])  # an unknown model starts on the worker thread
    assert first[0]["y"].tolist() == [[1.0, 1.0]] and calls[0][1].startswith("mlship-runner")
    requests = [{"x": np.full((k, 2), k, dtype=np.float64)} for k in (1, 2, 3)]
    results = run_all(batcher, requests)
    assert [r["y"][:, 0].tolist() for r in results] == [[2.0], [3.0, 3.0], [4.0, 4.0, 4.0]]
    assert calls[1:] == [(6, threading.current_thread().name)]  # one run, on the loop's thread


def test_a_slow_model_stays_on_the_worker_thread_and_errors_reach_callers_on_the_loop_too():
    threads = []

    def slow(feeds):
        threads.append(threading.current_thread().name)
        deadline = time.thread_time() + 0.005  # 5 ms of CPU: over the 1 ms the loop may spend
        while time.thread_time() < deadline:
            pass
        return {"y": feeds["x"]}

    batcher = MicroBatcher(slow, inline_max_ms=1.0)
    for _ in range(3):
        run_all(batcher, [{"x": np.zeros((1, 1))}])
    assert all(name.startswith("mlship-runner") for name in threads)

    def failing(feeds):
        raise ValueError("boom")

    fast = MicroBatcher(failing, inline_max_ms=1000.0)
    fast._run_s = 0.0  # known to be fast: on the loop from the first request
    results = run_all(fast, [{"x": np.zeros((1, 1))}, {"x": np.zeros((1, 1))}])
    assert all(isinstance(r, ValueError) for r in results)


def test_a_lone_request_of_a_fast_model_runs_at_once_without_waiting_a_turn_of_the_loop():
    batches = []
    batcher = MicroBatcher(lambda feeds: {"y": feeds["x"] * 2}, on_batch=batches.append, inline_max_ms=1000.0)
    batcher._run_s = 0.0  # known to be fast

    def first_step(coro):
        """What the coroutine does before it first waits: its result, or None when it waits."""
        try:
            coro.send(None)
        except StopIteration as done:
            return done.value
        coro.close()
        return None

    async def main():
        alone = first_step(batcher.submit({"x": np.ones((2, 1))}, alone=True))
        assert alone["y"].tolist() == [[2.0], [2.0]] and batches == [2]  # ran, and counted as a batch of 2
        # Not alone: it waits for the loop's turn, so requests that arrived with it join its batch
        assert first_step(batcher.submit({"x": np.ones((1, 1))})) is None
        # Alone, but another request is pending: it queues behind it
        assert first_step(batcher.submit({"x": np.ones((1, 1))}, alone=True)) is None
        batcher._pending.clear()
        await asyncio.sleep(0)  # the scheduled drain finds nothing to run

    asyncio.run(main())
    slow = MicroBatcher(lambda feeds: {"y": feeds["x"]}, inline_max_ms=1.0)  # unknown: starts on the thread
    assert run_all(slow, [{"x": np.ones((1, 1))}])[0]["y"].tolist() == [[1.0]]


def test_lone_requests_still_notice_a_model_that_turns_slow():
    slow = [False]

    def run(feeds):
        if slow[0]:
            deadline = time.thread_time() + 0.003  # 3 ms of CPU: over the 1 ms the loop may spend
            while time.thread_time() < deadline:
                pass
        return {"y": feeds["x"]}

    batcher = MicroBatcher(run, inline_max_ms=1.0)
    batcher._run_s = 0.0  # known to be fast

    async def at_once():
        coro = batcher.submit({"x": np.ones((1, 1))}, alone=True)
        try:
            coro.send(None)
        except StopIteration:
            return True
        coro.close()
        return False

    async def main():
        assert all([await at_once() for _ in range(20)])
        slow[0] = True
        ran = [await at_once() for _ in range(40)]
        assert ran.index(False) <= 16  # timed one run in 8: the average passes 1 ms within two timed runs

    asyncio.run(main())


def test_on_run_gets_a_batch_of_one_row_requests_in_one_call_in_order():
    runs = []
    batcher = MicroBatcher(lambda feeds: {"y": feeds["x"] * 2}, max_wait_ms=20,
                           on_run=lambda tags, feeds, outputs: runs.append((tags, feeds["x"].ravel().tolist(),
                                                                            outputs["y"].ravel().tolist())))
    requests = [{"x": np.full((1, 1), i, dtype=np.float32)} for i in range(4)]

    async def main():
        return await asyncio.gather(*(batcher.submit(r, tag=f"t{i}") for i, r in enumerate(requests)))

    asyncio.run(main())
    assert runs == [(["t0", "t1", "t2", "t3"], [0, 1, 2, 3], [0, 2, 4, 6])]


def test_on_run_gets_each_tagged_request_alone_when_a_batch_mixes_rows_and_never_on_failure():
    runs = []

    def run(feeds):
        if (feeds["x"] < 0).any():
            raise ValueError("boom")
        return {"y": feeds["x"] + 1}

    batcher = MicroBatcher(run, max_wait_ms=20,
                           on_run=lambda tags, feeds, outputs: runs.append((tags, outputs["y"].ravel().tolist())))

    async def main(requests):
        return await asyncio.gather(*(batcher.submit(r, tag=t) for r, t in requests), return_exceptions=True)

    asyncio.run(main([({"x": np.zeros((2, 1))}, "two"), ({"x": np.ones((1, 1))}, None),
                      ({"x": np.full((1, 1), 5.0)}, "one")]))
    assert runs == [(["two"], [1, 1]), (["one"], [6])]  # the untagged request is not handed on
    runs.clear()
    results = asyncio.run(main([({"x": np.full((1, 1), -1.0)}, "bad"), ({"x": np.ones((1, 1))}, "ok")]))
    assert all(isinstance(r, ValueError) for r in results) and runs == []


def test_a_failing_on_run_does_not_fail_the_requests():
    def on_run(tags, feeds, outputs):
        raise RuntimeError("log broke")

    batcher = MicroBatcher(lambda feeds: {"y": feeds["x"]}, max_wait_ms=20, on_run=on_run)

    async def main():
        return await asyncio.gather(*(batcher.submit({"x": np.ones((1, 1))}, tag=i) for i in range(3)))

    assert [r["y"].tolist() for r in asyncio.run(main())] == [[[1.0]]] * 3


def test_on_the_loop_the_log_is_made_after_the_callers_have_their_answers():
    events = []
    batcher = MicroBatcher(lambda feeds: {"y": feeds["x"]}, inline_max_ms=1000.0,
                           on_run=lambda tags, feeds, outputs: events.append(("logged", tuple(tags))))
    batcher._run_s = 0.0  # known to be fast: runs on the loop

    async def caller(i, alone=False):
        await batcher.submit({"x": np.ones((1, 1))}, alone=alone, tag=i)
        events.append(("answered", i))

    async def main():
        await asyncio.gather(*(caller(i) for i in range(3)))
        await caller("lone", alone=True)
        for _ in range(3):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert events == [("answered", 0), ("answered", 1), ("answered", 2), ("logged", (0, 1, 2)),
                      ("answered", "lone"), ("logged", ("lone",))]


def test_a_lone_request_answered_through_a_reply_is_handed_to_on_lone_right_after_its_reply():
    events = []
    batcher = MicroBatcher(lambda feeds: {"y": feeds["x"] + 1}, inline_max_ms=1000.0,
                           on_run=lambda tags, feeds, outputs: events.append(("run", tags)),
                           on_lone=lambda tag, feeds, outputs: events.append(("lone", tag, outputs["y"].tolist())))
    batcher._run_s = 0.0  # known to be fast: a lone request runs at once, on the loop

    def reply(outputs, error):
        events.append(("answered", outputs["y"].tolist()))

    async def main():
        batcher.submit_to({"x": np.ones((1, 1))}, True, "t1", reply)
        events.append("returned")  # on_lone was called before submit_to returned: no turn of the loop
        batcher.submit_to({"x": np.ones((1, 1))}, True, None, reply)  # untagged: not handed on
        await batcher.submit({"x": np.zeros((1, 1))}, alone=True, tag="t2")
        events.append("awaited")  # a coroutine's caller answers first: on_lone comes a turn later
        await asyncio.sleep(0)

    asyncio.run(main())
    assert events == [("answered", [[2.0]]), ("lone", "t1", [[2.0]]), "returned", ("answered", [[2.0]]),
                      "awaited", ("lone", "t2", [[1.0]])]
