"""The prediction log of served requests: a micro-batch's requests are logged
together (one call, their lines made at once), each exactly once, with the
record it would have alone; what is not one plain row goes its own way."""

from __future__ import annotations

import asyncio
import json

import numpy as np

from mlship.model.features import request_fields
from mlship.serve.app import ServeApp
from mlship.serve.service import ModelService
from mlship.serve.settings import ServeSettings
from tests import models
from tests.support import MODEL


def serve_together(tmp_path, requests, run=None, tasks=None):
    """Send (path, body, request id) requests to the app at once; the log's records and the answers
    (`run`: the model's run instead; `tasks`: the server's set of request tasks, in the scope)."""
    service = ModelService(ServeSettings(model_path=MODEL, name="bc", version="1", log_dir=tmp_path))
    service.batcher._run_s = 0.0  # known to be fast: batches run on the loop
    if run is not None:
        service.batcher._run = run
    app = ServeApp(service)
    answers = {}
    made, batch = [], service._line.batch
    service._line.batch = lambda ids, *rest: made.append(len(ids)) or batch(ids, *rest)

    async def one(path, body, request_id):
        async def receive():
            return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                answers[request_id] = message["status"]

        scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"x-request-id", request_id.encode())]}
        if tasks is not None:
            scope["mlship.tasks"] = tasks
        await app(scope, receive, send)

    async def main():
        await asyncio.gather(*(one(*r) for r in requests))

    asyncio.run(main())
    service.close()
    lines = [line for path in sorted(tmp_path.glob("*.jsonl")) for line in path.read_text().splitlines()]
    return [json.loads(line) for line in lines], answers, service, made


def test_each_request_of_a_mixed_burst_is_logged_once_with_its_own_row(tmp_path):
    X, _, _ = models.sample_matrix()
    service = ModelService(ServeSettings(model_path=MODEL, name="bc", version="1"))
    names = request_fields(service.signature)
    service.close()
    v2 = "/v2/models/bc/infer"

    def tensor(rows):
        return {"inputs": [{"name": "X", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}]}

    requests = [(v2, tensor(X[i:i + 1]), f"v2-{i}") for i in range(6)]
    requests += [("/predict", {"instances": [dict(zip(names, X[10 + i].tolist()))]}, f"obj-{i}") for i in range(3)]
    requests += [(v2, tensor(X[20:22]), "two-rows"), (v2, {"inputs": []}, "bad")]
    records, answers, served, batches = serve_together(tmp_path / "mixed", requests)
    # Rows as sent, feeds and two rows in one run: each request is handed on its own way; the
    # one-row ones are held back and made later, alike ones together (six feeds, three objects).
    assert batches == [6, 3]
    assert answers == {**{r[2]: 200 for r in requests}, "bad": 400}
    by_id = {}
    for record in records:
        by_id.setdefault(record["request_id"], []).append(record)
    assert sorted(by_id) == sorted(r[2] for r in requests)
    assert [len(by_id[r[2]]) for r in requests] == [1] * 9 + [2, 1]  # once each; two rows: two records
    alone = served.runner.run  # the model run on each request's own rows
    for i in range(6):
        (record,) = by_id[f"v2-{i}"]
        expected = alone({"X": X[i:i + 1].astype(np.float32)})
        assert list(record["inputs"]) == names  # float32's shortest text, as the writer writes it
        assert np.array_equal(np.array([record["inputs"][n] for n in names], np.float32), X[i].astype(np.float32))
        assert record["outputs"]["label"] == int(expected["label"][0])
        assert np.allclose(record["outputs"]["probabilities"], expected["probabilities"][0])
        assert record["status"] == 200 and record["error"] is None and "row" not in record
    assert by_id["obj-1"][0]["inputs"] == dict(zip(names, X[11].tolist()))  # the object as sent
    assert [r["row"] for r in by_id["two-rows"]] == [0, 1]
    assert by_id["bad"][0]["status"] == 400 and by_id["bad"][0]["error"]
    ids = [r["request_id"] for r in records]
    assert ids.index("v2-0") < ids.index("v2-5") and ids.index("obj-0") < ids.index("obj-2")  # in batch order


def test_a_batch_of_one_row_requests_is_logged_together_as_each_would_be_alone(tmp_path):
    X, _, _ = models.sample_matrix()
    bodies = [{"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": X[i].tolist()}]}
              for i in range(8)]
    together, _, _, batches = serve_together(tmp_path / "together", [
        ("/v2/models/bc/infer", body, f"r{i}") for i, body in enumerate(bodies)])
    assert max(batches) == 8
    for i, body in enumerate(bodies):  # the same request alone
        (alone,), _, _, _ = serve_together(tmp_path / f"alone{i}", [("/v2/models/bc/infer", body, f"r{i}")])
        record = together[i]
        assert record["request_id"] == f"r{i}"  # in order
        assert {k: v for k, v in record.items() if k not in ("ts", "latency_ms")} == \
            {k: v for k, v in alone.items() if k not in ("ts", "latency_ms")}


def failing_run(feeds):
    raise RuntimeError("the model broke")


def test_a_failed_run_is_logged_as_500_for_each_of_its_requests_batched_or_alone(tmp_path):
    X, _, _ = models.sample_matrix()
    bodies = [{"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": X[i].tolist()}]}
              for i in range(3)]
    for tasks, name in ((None, "batched"), ({"only"}, "alone")):
        requests = [("/v2/models/bc/infer", body, f"{name}-{i}") for i, body in enumerate(bodies)]
        requests.append(("/predict", {"instances": [X[5].tolist()]}, f"{name}-predict"))
        records, answers, _, _ = serve_together(tmp_path / name, requests, run=failing_run, tasks=tasks)
        assert answers == {r[2]: 500 for r in requests}
        assert sorted(r["request_id"] for r in records) == sorted(answers)  # each once
        assert all(r["status"] == 500 and r["error"] == "RuntimeError: the model broke" for r in records)


def test_lone_requests_are_logged_together_later_each_with_its_own_time(tmp_path, monkeypatch):
    """A lone one-row request's record is held back and made with the next ones (one batch of
    lines); each keeps its own time and content, and close() writes what is still held."""
    import mlship.serve.service as service_module

    monkeypatch.setattr(service_module, "HOLD_S", 60.0)  # only HOLD_ROWS or close() writes them
    X, _, _ = models.sample_matrix()
    service = ModelService(ServeSettings(model_path=MODEL, name="bc", version="1", log_dir=tmp_path))
    service.batcher._run_s = 0.0
    app = ServeApp(service)
    made, batch = [], service._line.batch
    service._line.batch = lambda ids, *rest: made.append(len(ids)) or batch(ids, *rest)
    names = request_fields(service.signature)
    sent = [("/v2/models/bc/infer", {"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32",
                                                 "data": X[i].tolist()}]}) for i in range(4)]
    sent += [("/predict", {"instances": [dict(zip(names, X[4 + i].tolist()))]}) for i in range(3)]

    async def main():
        for i, (path, body) in enumerate(sent):
            async def receive():
                return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}

            async def send(message):
                pass
            scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"x-request-id", b"lone-%d" % i)],
                     "mlship.tasks": {None}}  # its own task alone: answered at once
            await app(scope, receive, send)
            await asyncio.sleep(0.003)  # apart in time
        await asyncio.sleep(0)
        assert made == [] and service.log.accepted == 0  # held back, nothing made yet

    asyncio.run(main())
    service.close()
    assert made == [4, 3]  # one batch of lines per run of alike requests (feeds; rows as sent)
    records = [json.loads(line) for path in sorted(tmp_path.glob("*.jsonl")) for line in path.read_text().splitlines()]
    assert [r["request_id"] for r in records] == [f"lone-{i}" for i in range(7)]
    assert [r["ts"] for r in records] == sorted(r["ts"] for r in records) and len({r["ts"] for r in records}) == 7
    for i, record in enumerate(records):
        expected = service.runner.run({"X": X[i:i + 1].astype(np.float32)})
        if i < 4:
            assert np.array_equal(np.array([record["inputs"][n] for n in names], np.float32), X[i].astype(np.float32))
        else:
            assert record["inputs"] == dict(zip(names, X[i].tolist()))  # the object as sent
        assert record["outputs"]["label"] == int(expected["label"][0]) and record["status"] == 200


def test_predict_rows_taken_straight_from_the_body_are_logged_as_sent(tmp_path):
    """/predict's usual body is decoded without JSON objects (BodyPlan): the log still has each
    row's features by name with the values sent (integers stay integers), alone or batched."""
    X, _, _ = models.sample_matrix()
    service = ModelService(ServeSettings(model_path=MODEL, name="bc", version="1"))
    names = request_fields(service.signature)
    service.close()
    sent = [dict(zip(names[::-1], [int(v) if j % 2 else float(v) for j, v in enumerate(X[i][::-1])]))
            for i in range(6)]
    requests = [("/predict", {"instances": [row]}, f"p{i}") for i, row in enumerate(sent)]
    requests.append(("/predict", {"instances": sent[:2]}, "two"))
    requests.append(("/v1/models/bc:predict", {"instances": [sent[3]]}, "v1"))
    for tasks, name in ((None, "batched"), ({"only"}, "alone")):
        records, answers, _, _ = serve_together(tmp_path / name, requests, tasks=tasks)
        assert set(answers.values()) == {200}
        by_id = {}
        for record in records:
            by_id.setdefault(record["request_id"], []).append(record["inputs"])
        expected = {f"p{i}": [row] for i, row in enumerate(sent)} | {"two": sent[:2], "v1": [sent[3]]}
        assert by_id == expected
        for request_id, rows in by_id.items():
            for logged, row in zip(rows, expected[request_id]):
                assert [type(logged[n]) for n in names] == [type(row[n]) for n in names]


def test_held_records_that_are_not_alike_are_each_logged_as_alone_with_nothing_promoted(tmp_path, monkeypatch):
    """Held-back records are made as one batch only when every one has the same inputs and
    outputs (names, dtypes, trailing shapes); else each run of alike ones is made on its own,
    and a float32 input is never written at float64's precision, nor a record lost."""
    import mlship.serve.service as service_module

    monkeypatch.setattr(service_module, "HOLD_S", 60.0)
    row = np.full((1, 30), 0.1)
    outputs = {"label": np.array([1], np.int64), "probabilities": np.array([[0.25, 0.75]], np.float32)}
    wider = {**outputs, "probabilities": np.array([[0.25, 0.5, 0.25]], np.float32)}
    f32 = row.astype(np.float32)
    for name, records, batches in (("dtypes", [(f32, outputs), (f32, outputs), (row, outputs), (row, outputs)], [2, 2]),
                                   ("shapes", [(f32, outputs), (f32, outputs), (f32, wider),
                                               (f32, {**outputs, "label": np.array([1.0])})], [2]),
                                   ("alike", [(f32, outputs)] * 3, [3])):
        service = ModelService(ServeSettings(model_path=MODEL, name="bc", version="1", log_dir=tmp_path / name))
        names = request_fields(service.signature)
        made, batch = [], service._line.batch
        service._line.batch = lambda ids, *rest: made.append(len(ids)) or batch(ids, *rest)

        async def main():
            for i, (X, out) in enumerate(records):
                service._log_lone((f"r{i}", 0.0, None), {"X": X}, out)
            assert made == [] and len(service._held) == len(records)

        asyncio.run(main())
        service.close()
        assert made == batches, name  # a batch per run of alike records (one alone: its own line)
        logged = [json.loads(line) for path in sorted((tmp_path / name).glob("*.jsonl"))
                  for line in path.read_text().splitlines()]
        assert [r["request_id"] for r in logged] == [f"r{i}" for i in range(len(records))]
        assert [r["inputs"][names[0]] for r in logged] == [0.1] * len(records)  # float32's text: not promoted
        assert logged[0]["outputs"] == {"label": 1, "probabilities": [0.25, 0.75]}
        assert service.log.failed == 0 and service.log.written == len(records)
    assert logged[-1]["outputs"] == logged[0]["outputs"]
    assert [r["outputs"]["probabilities"] for r in logged] == [[0.25, 0.75]] * 3
