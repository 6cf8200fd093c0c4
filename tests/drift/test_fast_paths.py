"""The fast paths of `mlship drift` (issue 21): statistics without scipy.stats equal SciPy's,
the multivariate checks without scikit-learn equal (or stand in for) scikit-learn's, the
bucket keys are the ones the sketch always had, the row sample is bounded, deterministic and
independent of chunking, and reading ahead or reading both sides at once changes nothing."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlship.drift import detection
from mlship.drift.frames import iter_frames, read_ahead
from mlship.drift.kolmogorov import kstwo_sf
from mlship.drift.multivariate import _Pca, roc_auc
from mlship.drift.profile import ColumnProfile
from mlship.drift.samples import RowSample
from mlship.drift.settings import DriftOptions
from mlship.drift.sketch import LOG_GAMMA, MIN_ABS, NumericSketch
from mlship.drift.stats import categorical_stats, jensen_shannon, missing_stats, wasserstein
from mlship.predlog.reader import ReadReport


@pytest.mark.parametrize("n", [100_001, 500_000, 5_000_000, 50_000_000])
def test_the_ks_p_value_equals_scipys_kstwo(n):
    # (SciPy's exact one-sided smirnov takes ~0.5 s a call near n = 500,000: a sparse grid)
    grid = np.concatenate([np.geomspace(1e-7, 0.999, 40), [0.5, 1 / n, 2 / n, 0.0, 1.0]])
    ours = [kstwo_sf(float(d), n) for d in grid]
    theirs = [float(stats.kstwo.sf(d, n)) for d in grid]
    assert ours == theirs


def test_small_samples_ask_scipy_and_agree():
    for n, d in [(5, 0.3), (140, 0.05), (5000, 0.01), (100_000, 0.002)]:
        assert kstwo_sf(d, n) == float(stats.kstwo.sf(d, n))


def test_weighted_wasserstein_and_jensen_shannon_equal_scipys():
    rng = np.random.default_rng(1)
    v1, v2 = np.sort(rng.normal(size=500)), np.sort(rng.normal(0.3, 2, 700))
    w1, w2 = rng.integers(1, 50, 500).astype(float), rng.integers(1, 9, 700).astype(float)
    assert wasserstein(v1, w1, v2, w2) == pytest.approx(stats.wasserstein_distance(v1, v2, w1, w2), rel=1e-12)
    p, q = rng.random(12), rng.random(12)
    p[3] = 0.0
    assert jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2), rel=1e-12)


def _profile(values) -> ColumnProfile:
    col = ColumnProfile("c")
    col.add(np.asarray(values, dtype=object))
    return col


def test_chi_square_and_missing_rate_p_values_equal_scipys():
    rng = np.random.default_rng(2)
    ref = _profile(rng.choice(["a", "b", "c", "d", None], 5000, p=[0.4, 0.3, 0.2, 0.05, 0.05]))
    cur = _profile(rng.choice(["a", "b", "c", "e", None], 4000, p=[0.3, 0.3, 0.3, 0.05, 0.05]))
    got = categorical_stats(ref, cur)
    cats = sorted(set(ref.category_counts()) | set(cur.category_counts()))
    table = np.array([[side.category_counts().get(c, 0) for c in cats] for side in (ref, cur)], dtype=float)
    chi2, p = stats.chi2_contingency(table, correction=False)[:2]
    assert got["chi2"] == pytest.approx(chi2, rel=1e-12) and got["chi2_p"] == pytest.approx(p, rel=1e-9)
    missing = missing_stats(ref, cur)
    z = abs(missing["delta"]) / math.sqrt(
        (ref.missing + cur.missing) / (ref.count + cur.count) * (1 - (ref.missing + cur.missing) / (ref.count + cur.count))
        * (1 / ref.count + 1 / cur.count))
    assert missing["p"] == pytest.approx(2 * stats.norm.sf(z), rel=1e-12)


def test_bucket_keys_are_the_sketchs_own_for_every_sign():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0, 5, 4000), [0.0, 1e-13, -1e-13, MIN_ABS, -MIN_ABS, 1e150, -1e-300],
                             np.exp(rng.uniform(-40, 40, 3000))])
    sketch = NumericSketch()
    sketch.add(values)
    expected = {}
    for name, part in (("pos", values[values >= MIN_ABS]), ("neg", -values[values <= -MIN_ABS])):
        keys, counts = np.unique(np.ceil(np.log(part) / LOG_GAMMA).astype(np.int64), return_counts=True)
        expected[name] = [[int(k), int(c)] for k, c in zip(keys, counts)]
    doc = sketch.to_json()["buckets"]
    assert doc["pos"] == expected["pos"] and doc["neg"] == expected["neg"]
    assert doc["zero"] == int((np.abs(values) < MIN_ABS).sum()) > 3


def test_the_row_sample_is_bounded_deterministic_and_the_same_whatever_the_chunks():
    rng = np.random.default_rng(4)
    x, label = rng.normal(size=30_000), rng.choice(["a", "b"], 30_000).astype(object)

    def sample(chunk: int) -> RowSample:
        kept = RowSample(cap=500, cap_all=2000, seed=7)
        for start in range(0, len(x), chunk):
            part = slice(start, start + chunk)
            keys = (np.arange(start, min(start + chunk, len(x))) // 10_000).astype(float)
            kept.add({"x": x[part], "label": label[part]}, np.ones(len(x[part]), dtype=bool), keys)
        return kept

    one, other = sample(1000), sample(7000)
    assert one.count() == 2000 and all(one.count(float(k)) == 500 for k in range(3))
    for key in (-math.inf, 0.0, 1.0, 2.0):
        a, b = one.rows(key), other.rows(key)
        assert np.array_equal(a["x"], b["x"]) and list(a["label"]) == list(b["label"])
    rows = one.rows()["x"]
    assert np.array_equal(np.sort(np.flatnonzero(np.isin(x, rows))), np.flatnonzero(np.isin(x, rows)))  # reading order
    assert not np.array_equal(RowSample(cap=500, seed=8).rng.random(5), one.rng.random(5))


def test_pca_by_eigendecomposition_reconstructs_as_scikit_learns():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(5)
    z = rng.normal(size=(3000, 6)) @ rng.normal(size=(6, 6))
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    ours = _Pca(z, 0.65)
    theirs = PCA(n_components=0.65, svd_solver="full").fit(z)
    assert ours.n_components == theirs.n_components_
    assert ours.explained == pytest.approx(theirs.explained_variance_ratio_.sum(), rel=1e-9)
    assert np.allclose(ours.reconstruct(z), theirs.inverse_transform(theirs.transform(z)), atol=1e-9)


def test_roc_auc_with_ties_equals_scikit_learns():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(6)
    y = rng.random(800) < 0.4
    scores = np.round(rng.normal(size=800) + y * 0.5, 1)  # many ties
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_a_default_run_imports_neither_scikit_learn_nor_scipy_stats(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    for name, shift in (("ref", 0.0), ("cur", 0.5)):
        pq.write_table(pa.table({"a": rng.normal(shift, 1, 250_000), "b": rng.normal(0, 1, 250_000),
                                 "c": rng.choice(["x", "y", "z"], 250_000)}), tmp_path / f"{name}.parquet")
    code = ("import sys, json; from mlship.drift.detection import run_drift; from mlship.drift.settings import "
            f"DriftOptions; r = run_drift(DriftOptions(reference={str(tmp_path / 'ref.parquet')!r}, "
            f"current={str(tmp_path / 'cur.parquet')!r})); "
            "print(json.dumps([r.drifted_columns, r.multivariate.flagged_by, "
            "sorted(m for m in sys.modules if m.startswith(('sklearn', 'scipy.stats')))]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), check=True)
    drifted, flagged, imported = json.loads(out.stdout)
    assert drifted == ["a"] and "classifier" in flagged and imported == []


def _frames(path):
    return [(f.rows, {k: v.tolist() for k, v in f.columns.items()}) for f in iter_frames(path, chunk_rows=700)]


def test_reading_ahead_gives_the_serial_frames_and_raises_where_reading_failed(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(8)
    pq.write_table(pa.table({"a": rng.normal(size=5000), "t": rng.choice(["p", "q"], 5000)}), tmp_path / "d.parquet",
                   row_group_size=1500)
    table = pq.read_table(tmp_path / "d.parquet")
    frames = _frames(tmp_path / "d.parquet")
    assert [rows for rows, _ in frames] == [700] * 7 + [100]
    assert [v for _, f in frames for v in f["a"]] == table.column("a").to_pylist()

    def failing():
        yield 1
        yield 2
        raise ValueError("bad page")

    got = []
    with pytest.raises(ValueError, match="bad page"):
        for item in read_ahead(failing()):
            got.append(item)
    assert got == [1, 2]
    endless = read_ahead(iter(range(10 ** 9)))
    assert next(endless) == 0
    endless.close()  # the producer stops: no thread left filling a queue


def test_both_sides_read_at_once_give_the_profiles_read_one_after_the_other(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(9)
    for name in ("ref", "cur"):
        pq.write_table(pa.table({"a": rng.normal(size=40_000), "k": rng.integers(0, 4, 40_000),
                                 "t": rng.choice(["p", "q", None], 40_000)}), tmp_path / f"{name}.parquet")
    options = DriftOptions(reference=str(tmp_path / "ref.parquet"), current=str(tmp_path / "cur.parquet"),
                           chunk_rows=3000)

    def collectors():
        from mlship.drift.samples import REFERENCE_ROWS, Collector

        return Collector(options, feature_cap=REFERENCE_ROWS, feature_cap_all=REFERENCE_ROWS), Collector(options)

    read = ReadReport()
    (ref, _), (cur, _, _) = detection._both(options, read, None, lambda rows: None, *collectors())
    rows_ref, rows_cur = collectors()
    serial_ref, _ = detection._reference(options, ReadReport(), None, lambda rows: None, rows_ref)
    serial_cur = detection._current(options, ReadReport(), None, lambda rows: None, None, rows_cur)[0]
    assert ref.to_json() == serial_ref.to_json() and cur.profile.to_json() == serial_cur.profile.to_json()
    assert read.files == [options.reference, options.current]


def test_a_drift_run_reads_through_jemalloc(tmp_path):
    """pyarrow's default pool (mimalloc) hands each chunk's memory back and the kernel zeroes
    it again; run_drift chooses jemalloc before pyarrow is imported (mlship.data.arrow)."""
    code = ("import sys; from mlship.cli import main\n"
            "try:\n    main(['drift', '-r', sys.argv[1], '-c', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
            "import pyarrow as pa; print(pa.default_memory_pool().backend_name)")
    path = tmp_path / "d.csv"
    path.write_text("x\n" + "".join(f"{i % 7}.5\n" for i in range(500)))
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == "jemalloc"


def test_dictionary_encoded_text_counts_as_plain_text(tmp_path):
    """Parquet categories are counted by code: the same profile as the same texts stored plain."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlship.drift.detection import build_profile

    rng = np.random.default_rng(10)
    texts = rng.choice(["red", "green", "True", "true", "FALSE", "a b", None], 20_000).tolist()
    ids = [f"id{i}" for i in range(20_000)]  # distinct values: an identifier's signals
    plain = pa.table({"colour": pa.array(texts, pa.string()), "id": pa.array(ids)})
    coded = pa.table({"colour": pa.array(texts, pa.string()).dictionary_encode(),
                      "id": pa.array(ids).dictionary_encode()})
    pq.write_table(plain, tmp_path / "plain.parquet", use_dictionary=False)
    pq.write_table(coded, tmp_path / "coded.parquet")
    assert pq.read_schema(tmp_path / "coded.parquet").field("colour").type.value_type == pa.string()
    frames = list(iter_frames(tmp_path / "coded.parquet", chunk_rows=3000))
    assert set(frames[0].coded) == {"colour", "id"} and not list(iter_frames(tmp_path / "plain.parquet"))[0].coded
    docs = [build_profile(str(tmp_path / name), chunk_rows=3000)[0].to_json() for name in ("plain.parquet",
                                                                                           "coded.parquet")]
    assert docs[0] == docs[1]
    assert docs[1]["columns"]["colour"]["missing"] == texts.count(None) > 0
