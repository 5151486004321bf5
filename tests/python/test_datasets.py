# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""heteroq.datasets: the jet readers (ARFF, CSV, parquet, the tutorial's .npy), split and scaling
against sklearn, label orders, the cache, the OpenML download against a localhost server, the
surrogate (determinism, schema, difficulty) and the IDX / Fashion-MNIST reader.

Run as a script, this file is the surrogate's calibration (docs/datasets.md, "Calibration")::

    PYTHONPATH=build/python /usr/bin/python3 tests/python/test_datasets.py --calibrate
"""
import argparse
import contextlib
import gzip
import hashlib
import http.server
import importlib.util
import json
import os
import pathlib
import re
import socket
import struct
import sys
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from heteroq import datasets
from heteroq.datasets import JET_FEATURES

REPO = pathlib.Path(__file__).resolve().parents[2]
OPENML_CLASSES = ["g", "q", "t", "w", "z"]


# ---------------------------------------------------------------------------------------------
# helpers


def raw_jets(n=200, seed=3):
    """Jet-like raw features rounded to 6 decimals (as in OpenML's file) and class letters."""
    x, y = datasets.make_surrogate_jets(n, seed)
    return np.round(x, 6), [datasets.JET_CLASSES[i] for i in y]


def write_arff(path, x, letters, *, names=JET_FEATURES, quoted_names=False, label="class",
               nominal=("g", "q", "t", "w", "z"), extra_lines=(), opener=open, newline="\n"):
    def name(n):
        return f"'{n}'" if quoted_names else n

    lines = ["% hls4ml_lhc_jets_hlf, written by the test", "",
             "@relation 'hls4ml_lhc_jets_hlf'", ""]
    lines += [f"@attribute {name(n)} numeric" for n in names]
    lines.append(f"@attribute {name(label)} {{{','.join(nominal)}}}")
    lines += ["", "@data", "% a comment inside the data"]
    for row, letter in zip(x, letters):
        lines.append(",".join(repr(float(v)) for v in row) + f",{letter}")
    lines += list(extra_lines)
    with opener(path, "wt", newline="") as f:
        f.write(newline.join(lines) + newline)
    return path


def write_csv(path, header, rows, opener=open):
    with opener(path, "wt", newline="") as f:
        f.write(",".join(header) + "\n")
        for row in rows:
            f.write(",".join(str(v) for v in row) + "\n")
    return path


def plain_csv(path, x, letters, label="class"):
    return write_csv(path, list(JET_FEATURES) + [label],
                     [[repr(float(v)) for v in row] + [c] for row, c in zip(x, letters)])


def codes(letters, order=datasets.JET_CLASSES):
    return np.array([order.index(c) for c in letters], dtype=np.int64)


def sklearn_reference(x, y, test_size=0.2, seed=42):
    sk = pytest.importorskip("sklearn")
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    assert sk
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, random_state=seed)
    scaler = StandardScaler().fit(xtr)
    return scaler.transform(xtr), scaler.transform(xte), ytr, yte, scaler


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """Every test gets its own cache directory (never ~/.cache)."""
    d = tmp_path / "cache"
    monkeypatch.setenv("HETEROQ_CACHE", str(d))
    return d


# ---------------------------------------------------------------------------------------------
# constants and label orders


def test_feature_names_classes_and_citation():
    text = (REPO / "docs" / "datasets.md").read_text()
    assert len(JET_FEATURES) == 16 and len(set(JET_FEATURES)) == 16
    assert JET_FEATURES[0] == "zlogz" and JET_FEATURES[-2:] == ("mass_mmdt", "multiplicity")
    assert ", ".join(JET_FEATURES) in text  # the docs list the same names in the same order
    assert datasets.JET_CLASSES == ("g", "q", "w", "z", "t")
    assert datasets.OPENML_JETS_ID == 42468 and datasets.OPENML_JETS_NAME == "hls4ml_lhc_jets_hlf"
    assert "42468" in datasets.JETS_CITATION and "CC BY 4.0" in datasets.JETS_CITATION


def test_label_orders():
    assert datasets.jet_label_order() == ("g", "q", "w", "z", "t")
    assert datasets.jet_label_order("openml") == tuple(OPENML_CLASSES)
    assert datasets.jet_label_order("GQTWZ") == tuple(OPENML_CLASSES)
    assert datasets.jet_label_order(["t", "z", "w", "q", "g"]) == ("t", "z", "w", "q", "g")
    for bad in ("gqwz", "gqwzz", "abcde", ["g", "q"]):
        with pytest.raises(ValueError, match="label_order"):
            datasets.jet_label_order(bad)
    with pytest.raises(TypeError, match="label_order"):
        datasets.jet_label_order(5)


# ---------------------------------------------------------------------------------------------
# split and standardization


@pytest.mark.parametrize("n,test_size,seed", [(10, 0.2, 42), (1001, 0.2, 42), (997, 0.33, 7),
                                              (50, 13, 0), (830, 0.25, 123)])
def test_split_indices_equal_sklearn(n, test_size, seed):
    pytest.importorskip("sklearn")
    from sklearn.model_selection import train_test_split
    rows = np.arange(n)
    sk_train, sk_test = train_test_split(rows, test_size=test_size, random_state=seed)
    train, test = datasets.train_test_indices(n, test_size, seed)
    np.testing.assert_array_equal(train, sk_train)
    np.testing.assert_array_equal(test, sk_test)


def test_split_arguments_are_checked():
    with pytest.raises(ValueError, match="test_size"):
        datasets.train_test_indices(10, 1.5)
    with pytest.raises(ValueError, match="test_size"):
        datasets.train_test_indices(10, 10)
    with pytest.raises(TypeError, match="test_size"):
        datasets.train_test_indices(10, "0.2")
    with pytest.raises(TypeError, match="seed"):
        datasets.train_test_indices(10, 0.2, 1.5)


def test_load_jets_equals_sklearn_split_and_standard_scaler(tmp_path, cache_dir):
    x, letters = raw_jets(301)
    path = plain_csv(tmp_path / "jets.csv", x, letters)
    jets = datasets.load_jets(path)
    xtr, xte, ytr, yte, scaler = sklearn_reference(x, codes(letters))
    assert jets.x_train.dtype == np.float32 and jets.y_train.dtype == np.int64
    assert jets.x_train.shape == (240, 16) and jets.x_test.shape == (61, 16)
    np.testing.assert_allclose(jets.x_train, xtr.astype(np.float32), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jets.x_test, xte.astype(np.float32), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(jets.y_train, ytr)
    np.testing.assert_array_equal(jets.y_test, yte)
    np.testing.assert_allclose(jets.mean, scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose(jets.std, scaler.scale_, rtol=1e-10)
    assert jets.source == str(path.resolve()) and not jets.is_surrogate
    assert "train_test_split(test_size=0.2, random_state=42)" in str(jets)
    # Another split seed and test size: still sklearn's.
    other = datasets.load_jets(path, test_size=0.3, seed=5, cache=False)
    xtr, xte, ytr, yte, _ = sklearn_reference(x, codes(letters), 0.3, 5)
    np.testing.assert_allclose(other.x_test, xte.astype(np.float32), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(other.y_train, ytr)


def test_standardization_is_fitted_on_the_training_part_only(tmp_path, cache_dir):
    x, letters = raw_jets(200)
    jets = datasets.load_jets(plain_csv(tmp_path / "a.csv", x, letters))
    np.testing.assert_allclose(jets.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(jets.x_train.std(axis=0), 1, atol=1e-4)
    assert np.abs(jets.x_test.mean(axis=0)).max() > 1e-3  # the test part is not re-centred
    # Changing only test rows leaves the scaler and the training inputs as they were.
    _, test_idx = datasets.train_test_indices(200)
    x2 = x.copy()
    x2[test_idx] *= 3.0
    jets2 = datasets.load_jets(plain_csv(tmp_path / "b.csv", x2, letters))
    np.testing.assert_array_equal(jets2.mean, jets.mean)
    np.testing.assert_array_equal(jets2.x_train, jets.x_train)
    assert not np.allclose(jets2.x_test, jets.x_test)


def test_standardize_false_and_limit(tmp_path, cache_dir):
    x, letters = raw_jets(120)
    path = plain_csv(tmp_path / "a.csv", x, letters)
    raw = datasets.load_jets(path, standardize=False)
    train, test = datasets.train_test_indices(120)
    np.testing.assert_array_equal(raw.x_train, x[train].astype(np.float32))
    np.testing.assert_array_equal(raw.x_test, x[test].astype(np.float32))
    assert raw.mean is None and raw.std is None and "not standardized" in str(raw)
    small = datasets.load_jets(path, limit=50, standardize=False)
    train, test = datasets.train_test_indices(50)
    np.testing.assert_array_equal(small.x_train, x[:50][train].astype(np.float32))
    assert "first 50 rows" in str(small)
    with pytest.raises(ValueError, match="only 120 rows"):
        datasets.load_jets(path, limit=121)
    with pytest.raises(TypeError, match="limit"):
        datasets.load_jets(path, limit=5.0)
    with pytest.raises(TypeError, match="standardize"):
        datasets.load_jets(path, standardize="yes")


def test_label_orders_relabel_consistently(tmp_path, cache_dir):
    x, letters = raw_jets(150)
    path = plain_csv(tmp_path / "a.csv", x, letters)
    default = datasets.load_jets(path)
    openml = datasets.load_jets(path, label_order="openml")
    assert default.class_names == ("g", "q", "w", "z", "t")
    assert openml.class_names == tuple(OPENML_CLASSES)
    as_letters = np.array(default.class_names)[default.y_test]
    np.testing.assert_array_equal(np.array(openml.class_names)[openml.y_test], as_letters)
    _, test = datasets.train_test_indices(150)
    np.testing.assert_array_equal(as_letters, np.array(letters)[test])
    assert not np.array_equal(default.y_test, openml.y_test)


def test_as_tensors(tmp_path, cache_dir):
    x, letters = raw_jets(60)
    jets = datasets.load_jets(plain_csv(tmp_path / "a.csv", x, letters), as_tensors=True)
    assert isinstance(jets.x_train, torch.Tensor) and jets.x_train.dtype == torch.float32
    assert isinstance(jets.y_test, torch.Tensor) and jets.y_test.dtype == torch.int64
    again = datasets.load_jets(plain_csv(tmp_path / "a.csv", x, letters)).as_tensors()
    assert torch.equal(again.x_train, jets.x_train)


# ---------------------------------------------------------------------------------------------
# ARFF


def test_arff_like_openml(tmp_path, cache_dir):
    x, letters = raw_jets(40)
    path = write_arff(tmp_path / "jets.arff", x, letters, quoted_names=True, newline="\r\n")
    features, labels = datasets.read_jets_file(path)
    np.testing.assert_array_equal(features, x)
    np.testing.assert_array_equal(labels, codes(letters))
    features, labels = datasets.read_jets_file(path, label_order="openml")
    np.testing.assert_array_equal(labels, codes(letters, OPENML_CLASSES))


def test_arff_quotes_comments_gzip_and_keras_names(tmp_path):
    x, letters = raw_jets(5)
    # Quoted values, comments after values, blank lines, j_ prefixed names in another order with
    # an extra column: all as Weka/OpenML allow.
    names = ["j_" + n for n in JET_FEATURES][::-1] + ["j_pt"]
    lines = ["@RELATION jets", *(f"@ATTRIBUTE {n} REAL" for n in names),
             "@ATTRIBUTE jet_type {'g','q','w','z','t'}", "@DATA"]
    for row, letter in zip(x, letters):
        values = [repr(float(v)) for v in row[::-1]] + ["1000.5"]
        values[3] = f"'{values[3]}'"
        lines.append(", ".join(values) + f", '{letter}'   % comment")
        lines.append("")
    path = tmp_path / "jets.arff.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    features, labels = datasets.read_jets_file(path)
    np.testing.assert_array_equal(features, x)
    np.testing.assert_array_equal(labels, codes(letters))


@pytest.mark.parametrize("edit,message", [
    (lambda rows: rows.__setitem__(2, rows[2].replace(rows[2].split(",")[4], "?", 1)),
     r"line 27, column 'c2_b1_mmdt': missing value '\?'"),
    (lambda rows: rows.__setitem__(1, rows[1].replace(rows[1].split(",")[0], "abc", 1)),
     r"line 26, column 'zlogz': 'abc' is not a number"),
    (lambda rows: rows.__setitem__(0, rows[0].rsplit(",", 2)[0] + ",g"),
     r"line 25: expected 17 values \(one per column\), found 16"),
    (lambda rows: rows.__setitem__(3, rows[3].rsplit(",", 1)[0] + ",h"),
     r"line 28, column 'class': unknown class label 'h'"),
    (lambda rows: rows.__setitem__(3, rows[3].rsplit(",", 1)[0] + ",2"),
     r"line 28, column 'class': numeric class label '2': say which order"),
    (lambda rows: rows.__setitem__(0, "{0 1.5, 16 g}"), r"line 25: sparse ARFF rows"),
    (lambda rows: rows.__setitem__(0, "'1.5, 2"), r"line 25: unterminated quoted value"),
    (lambda rows: rows.__setitem__(0, rows[0].replace(rows[0].split(",")[2], "inf", 1)),
     r"line 25, column 'c1_b1_mmdt': inf is not a finite number"),
])
def test_arff_errors_name_the_file_line_and_column(tmp_path, edit, message):
    x, letters = raw_jets(6)
    path = write_arff(tmp_path / "bad.arff", x, letters)
    lines = path.read_text().splitlines()
    data_start = lines.index("% a comment inside the data") + 1
    assert data_start == 24  # rows are on lines 25.. (1-based)
    rows = lines[data_start:]
    edit(rows)
    path.write_text("\n".join(lines[:data_start] + rows) + "\n")
    with pytest.raises(ValueError, match=re.escape(str(path)) + ", " + message):
        datasets.read_jets_file(path)


def test_arff_header_errors(tmp_path):
    x, letters = raw_jets(3)
    cases = {
        "missing": (dict(names=JET_FEATURES[:-1]), r"missing feature column\(s\) multiplicity"),
        "nolabel": (dict(label="flavour"), r"no label column"),
        "badnominal": (dict(nominal=("g", "q", "t", "w", "h")),
                       r"@attribute 'class': unknown class label 'h'"),
    }
    for name, (kwargs, message) in cases.items():
        if name == "missing":
            path = write_arff(tmp_path / f"{name}.arff", x[:, :-1], letters, **kwargs)
        else:
            path = write_arff(tmp_path / f"{name}.arff", x, letters, **kwargs)
        with pytest.raises(ValueError, match=message):
            datasets.read_jets_file(path)
    nodata = tmp_path / "nodata.arff"
    nodata.write_text("@relation x\n@attribute zlogz numeric\n")
    with pytest.raises(ValueError, match="no @data section"):
        datasets.read_jets_file(nodata)
    notarff = tmp_path / "notarff.arff"
    notarff.write_text("zlogz,class\n1,g\n")
    with pytest.raises(ValueError, match=r"line 1: expected @relation, @attribute or @data"):
        datasets.read_jets_file(notarff)
    string_feature = tmp_path / "string.arff"
    text = write_arff(tmp_path / "tmp.arff", x, letters).read_text()
    string_feature.write_text(text.replace("@attribute zlogz numeric", "@attribute zlogz string"))
    with pytest.raises(ValueError, match="feature attribute 'zlogz' must be numeric, is string"):
        datasets.read_jets_file(string_feature)
    empty = tmp_path / "empty.arff"
    empty.write_text(text.split("@data")[0] + "@data\n")
    with pytest.raises(ValueError, match="no data rows"):
        datasets.read_jets_file(empty)


# ---------------------------------------------------------------------------------------------
# CSV


def test_csv_class_and_jet_type_columns(tmp_path):
    x, letters = raw_jets(30)
    for label, words in (("class", letters),
                         ("jet_type", [{"g": "gluon", "q": "quark", "w": "W", "z": "Z",
                                        "t": "top"}[c] for c in letters])):
        path = plain_csv(tmp_path / f"{label}.csv", x, words, label=label)
        features, labels = datasets.read_jets_file(path)
        np.testing.assert_array_equal(features, x)
        np.testing.assert_array_equal(labels, codes(letters))


def test_csv_keras_training_one_hot_with_and_without_prefix(tmp_path):
    x, letters = raw_jets(25)
    for prefix in ("j_", ""):
        header = ["j_index"] + [prefix + n for n in JET_FEATURES[::-1]] + \
                 [prefix + c for c in ("g", "q", "w", "z", "t")]
        rows = [[i] + [repr(float(v)) for v in row[::-1]] +
                [int(c == letter) for c in ("g", "q", "w", "z", "t")]
                for i, (row, letter) in enumerate(zip(x, letters))]
        path = write_csv(tmp_path / f"keras{prefix}.csv.gz", header, rows, opener=gzip.open)
        features, labels = datasets.read_jets_file(path)
        np.testing.assert_array_equal(features, x)
        np.testing.assert_array_equal(labels, codes(letters))


def test_csv_integer_labels_need_the_file_label_order(tmp_path):
    x, letters = raw_jets(20)
    path = plain_csv(tmp_path / "ints.csv", x, [OPENML_CLASSES.index(c) for c in letters])
    with pytest.raises(ValueError, match=r"line 2, column 'class': numeric class label '\d': "
                                         r"say which order .* file_label_order='openml'"):
        datasets.read_jets_file(path)
    _, labels = datasets.read_jets_file(path, file_label_order="openml")
    np.testing.assert_array_equal(labels, codes(letters))
    _, labels = datasets.read_jets_file(path, file_label_order="openml", label_order="openml")
    np.testing.assert_array_equal(labels, codes(letters, OPENML_CLASSES))


@pytest.mark.parametrize("mutate,message", [
    (lambda h, r: r[1].__setitem__(5, "x1"), r"line 3, column 'c2_b2_mmdt': 'x1' is not a number"),
    (lambda h, r: r[2].__setitem__(0, ""), r"line 4, column 'zlogz': missing value ''"),
    (lambda h, r: r[2].__setitem__(0, "NA"), r"line 4, column 'zlogz': missing value 'NA'"),
    (lambda h, r: r[0].pop(), r"line 2: expected 17 values \(one per column\), found 16"),
    (lambda h, r: r[3].__setitem__(16, "b"), r"line 5, column 'class': unknown class label 'b'"),
    (lambda h, r: h.__setitem__(3, "c1_b2"), r"missing feature column\(s\) c1_b2_mmdt"),
    (lambda h, r: h.__setitem__(0, "c1_b0_mmdt"), r"column 'c1_b0_mmdt' appears 2 times"),
    (lambda h, r: h.__setitem__(16, "flavour"), r"no label column: expected a 'class' or "
                                                r"'jet_type' column, or the one-hot columns"),
    (lambda h, r: h.__setitem__(1, "j_zlogz"), r"both 'zlogz' and 'j_zlogz' are present"),
])
def test_csv_errors_name_the_file_line_and_column(tmp_path, mutate, message):
    x, letters = raw_jets(5)
    header = list(JET_FEATURES) + ["class"]
    rows = [[repr(float(v)) for v in row] + [c] for row, c in zip(x, letters)]
    mutate(header, rows)
    path = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        datasets.read_jets_file(path)


def test_csv_bad_one_hot_and_empty_files(tmp_path):
    x, letters = raw_jets(3)
    header = list(JET_FEATURES) + ["j_g", "j_q", "j_w", "j_z", "j_t"]
    rows = [[repr(float(v)) for v in row] + [1, 0, 0, 1, 0] for row in x]
    path = write_csv(tmp_path / "onehot.csv", header, rows)
    with pytest.raises(ValueError, match=r"line 2: the one-hot label columns \(j_g, j_q, j_w, "
                                         r"j_z, j_t\) must hold one 1 and four 0s"):
        datasets.read_jets_file(path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty file"):
        datasets.read_jets_file(empty)
    header_only = write_csv(tmp_path / "header.csv", list(JET_FEATURES) + ["class"], [])
    with pytest.raises(ValueError, match="no data rows"):
        datasets.read_jets_file(header_only)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="UTF-8"):
        datasets.read_jets_file(binary)


def test_paths_and_formats_are_checked(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.csv"):
        datasets.load_jets(tmp_path / "nothere.csv")
    odd = tmp_path / "jets.txt"
    odd.write_text("x")
    with pytest.raises(ValueError, match="cannot tell the format"):
        datasets.load_jets(odd)
    with pytest.raises(ValueError, match="format must be"):
        datasets.load_jets(odd, format="xlsx")
    with pytest.raises(TypeError, match="path"):
        datasets.load_jets(42)
    x, letters = raw_jets(10)
    path = plain_csv(tmp_path / "jets.data", x, letters)
    features, _ = datasets.read_jets_file(path, format="csv")
    np.testing.assert_array_equal(features, x)


# ---------------------------------------------------------------------------------------------
# parquet


def test_parquet_without_pyarrow_says_what_to_install(tmp_path):
    if importlib.util.find_spec("pyarrow") is not None:
        pytest.skip("pyarrow is installed: test_parquet_with_pyarrow covers parquet")
    path = tmp_path / "jets.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(ImportError, match=r"reading parquet needs pyarrow"):
        datasets.load_jets(path)


def test_parquet_with_pyarrow(tmp_path, cache_dir):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    x, letters = raw_jets(50)
    columns = {n: x[:, i] for i, n in enumerate(JET_FEATURES)}
    columns["jet_type"] = pa.array(letters).dictionary_encode()
    path = tmp_path / "jets.parquet"
    pq.write_table(pa.table(columns), str(path))
    features, labels = datasets.read_jets_file(path)
    np.testing.assert_array_equal(features, x)
    np.testing.assert_array_equal(labels, codes(letters))
    bad = dict(columns)
    bad["zlogz"] = pa.array([None] + list(x[1:, 0]))
    pq.write_table(pa.table(bad), str(tmp_path / "bad.parquet"))
    with pytest.raises(ValueError, match=r"column 'zlogz': 1 missing value"):
        datasets.read_jets_file(tmp_path / "bad.parquet")


# ---------------------------------------------------------------------------------------------
# the hls4ml tutorial's .npy arrays


def write_tutorial_arrays(directory, n=100, classes=True):
    """What hls4ml-tutorial part 1 saves: float64 X after StandardScaler, float32 one-hot y in
    LabelEncoder order, and le.classes_ (an object array, saved with pickle)."""
    x, letters = raw_jets(n)
    y = np.eye(5, dtype=np.float32)[[OPENML_CLASSES.index(c) for c in letters]]
    train, test = datasets.train_test_indices(n)
    mean, std = x[train].mean(0), x[train].std(0)
    directory.mkdir(exist_ok=True)
    np.save(directory / "X_train_val.npy", (x[train] - mean) / std)
    np.save(directory / "X_test.npy", (x[test] - mean) / std)
    np.save(directory / "y_train_val.npy", y[train])
    np.save(directory / "y_test.npy", y[test])
    if classes:
        np.save(directory / "classes.npy", np.array(OPENML_CLASSES, dtype=object))
    return x, letters, train, test, mean, std


def test_tutorial_npy_directory(tmp_path):
    x, letters, train, test, mean, std = write_tutorial_arrays(tmp_path / "npy")
    jets = datasets.load_jets(tmp_path / "npy")
    np.testing.assert_allclose(jets.x_train, ((x[train] - mean) / std).astype(np.float32))
    np.testing.assert_array_equal(jets.y_test, codes(np.array(letters)[test]))
    assert jets.class_names == ("g", "q", "w", "z", "t")
    assert "split and standardized by the tutorial" in str(jets) and jets.mean is None
    openml = datasets.load_jets(tmp_path / "npy", label_order="openml", as_tensors=True)
    assert openml.y_test.tolist() == codes(np.array(letters)[test], OPENML_CLASSES).tolist()
    small = datasets.load_jets(tmp_path / "npy", limit=10)
    assert (len(small.x_train), len(small.x_test)) == (8, 2)
    with pytest.raises(ValueError, match="already split"):
        datasets.load_jets(tmp_path / "npy", test_size=0.3)
    with pytest.raises(ValueError, match="already standardized"):
        datasets.load_jets(tmp_path / "npy", standardize=False)


def test_tutorial_npy_errors(tmp_path):
    write_tutorial_arrays(tmp_path / "noclasses", classes=False)
    with pytest.raises(FileNotFoundError, match="classes.npy not found: pass file_label_order"):
        datasets.load_jets(tmp_path / "noclasses")
    jets = datasets.load_jets(tmp_path / "noclasses", file_label_order="openml")
    assert len(jets.x_train) == 80
    write_tutorial_arrays(tmp_path / "short")
    np.save(tmp_path / "short" / "y_test.npy", np.eye(5)[[0, 1]])
    with pytest.raises(ValueError, match="X_test.npy has 20 rows but y_test.npy 2"):
        datasets.load_jets(tmp_path / "short")
    write_tutorial_arrays(tmp_path / "wide")
    np.save(tmp_path / "wide" / "X_test.npy", np.zeros((20, 15)))
    with pytest.raises(ValueError, match=r"X_test.npy: expected a numeric \(n, 16\) array"):
        datasets.load_jets(tmp_path / "wide")
    (tmp_path / "missing").mkdir()
    with pytest.raises(FileNotFoundError, match="X_train_val.npy not found"):
        datasets.load_jets(tmp_path / "missing")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_tutorial_classes_npy_is_unpickled_safely(tmp_path):
    write_tutorial_arrays(tmp_path / "evil")
    evil = np.empty(5, dtype=object)
    evil[:] = [_Evil()] * 5
    np.save(tmp_path / "evil" / "classes.npy", evil)
    with pytest.raises(ValueError, match=r"classes.npy: not a readable .npy array of class "
                                         r"names \(refusing to load posix.system"):
        datasets.load_jets(tmp_path / "evil")
    np.save(tmp_path / "evil" / "classes.npy", np.array(["g", "q", "x", "w", "z"], dtype=object))
    with pytest.raises(ValueError, match="unknown class name 'x'"):
        datasets.load_jets(tmp_path / "evil")


# ---------------------------------------------------------------------------------------------
# cache


def test_cache_miss_then_hit(tmp_path, cache_dir, monkeypatch):
    x, letters = raw_jets(80)
    path = write_arff(tmp_path / "jets.arff", x, letters)
    first = datasets.load_jets(path)
    assert not first.cache_hit and pathlib.Path(first.cache_file).parent == cache_dir
    assert [p.name for p in cache_dir.iterdir()] == [pathlib.Path(first.cache_file).name]

    def no_parsing(*args):
        raise AssertionError("the cache should have been used")

    monkeypatch.setitem(datasets._READERS, "arff", no_parsing)
    second = datasets.load_jets(path)
    assert second.cache_hit and second.cache_file == first.cache_file
    np.testing.assert_array_equal(second.x_train, first.x_train)
    np.testing.assert_array_equal(second.y_test, first.y_test)
    # Another label order or split is computed from the same cached table.
    third = datasets.load_jets(path, label_order="openml", seed=1)
    assert third.cache_hit


def test_cache_follows_the_source_file(tmp_path, cache_dir):
    x, letters = raw_jets(60)
    path = plain_csv(tmp_path / "jets.csv", x, letters)
    first = datasets.load_jets(path, standardize=False)
    x2 = x.copy()
    x2[:, 0] -= 1.0
    plain_csv(path, x2, letters)
    os.utime(path, ns=(time.time_ns(), os.stat(path).st_mtime_ns + 10**9))
    second = datasets.load_jets(path, standardize=False)
    assert not second.cache_hit and second.cache_file != first.cache_file
    train, _ = datasets.train_test_indices(60)
    np.testing.assert_array_equal(second.x_train, x2[train].astype(np.float32))
    assert datasets.load_jets(path, standardize=False).cache_hit


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip", "wrong_key"])
def test_corrupted_cache_is_detected_and_rebuilt(tmp_path, cache_dir, damage):
    x, letters = raw_jets(70)
    path = plain_csv(tmp_path / "jets.csv", x, letters)
    good = datasets.load_jets(path)
    file = pathlib.Path(good.cache_file)
    data = bytearray(file.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"not a zip file at all")
    elif damage == "flip":
        # A byte inside the features array: only the zip member's CRC-32 can tell.
        start = data.find(b"features.npy") + 200
        data[start] ^= 0xFF
    else:
        with np.load(file) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays["meta"][()]))
        meta["key"]["size"] += 1
        arrays["meta"] = np.array(json.dumps(meta))
        np.savez(file, **arrays)
        data = bytearray(file.read_bytes())
    file.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match=r"cache file .* is corrupted .*; rebuilding it"):
        rebuilt = datasets.load_jets(path)
    assert not rebuilt.cache_hit and rebuilt.cache_file == good.cache_file
    np.testing.assert_array_equal(rebuilt.x_test, good.x_test)
    assert datasets.load_jets(path).cache_hit  # the rebuilt file is good
    assert not [p for p in cache_dir.iterdir() if p.name.endswith(".tmp")]


def test_cache_off_and_unwritable_cache(tmp_path, cache_dir):
    x, letters = raw_jets(30)
    path = plain_csv(tmp_path / "jets.csv", x, letters)
    jets = datasets.load_jets(path, cache=False)
    assert jets.cache_file is None and not cache_dir.exists()
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.warns(RuntimeWarning, match="cannot write the cache file"):
        jets2 = datasets.load_jets(path, cache_dir=blocker / "sub")
    assert jets2.cache_file is None
    np.testing.assert_array_equal(jets2.x_train, jets.x_train)
    explicit = datasets.load_jets(path, cache_dir=tmp_path / "mine")
    assert pathlib.Path(explicit.cache_file).parent == tmp_path / "mine"


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("HETEROQ_CACHE", str(tmp_path / "hq"))
    assert datasets.default_cache_dir() == tmp_path / "hq"
    monkeypatch.delenv("HETEROQ_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.default_cache_dir() == tmp_path / "xdg" / "heteroq"


# ---------------------------------------------------------------------------------------------
# download


class _FakeOpenML:
    """A localhost OpenML: the JSON description and the ARFF download."""

    def __init__(self, arff: bytes, md5=None, download_status=200, extra=None):
        self.arff, self.requests = arff, []
        self.md5 = hashlib.md5(arff).hexdigest() if md5 is None else md5
        self.download_status, self.extra = download_status, extra or {}
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                fake.requests.append(self.path)
                if self.path == "/api/v1/json/data/42468":
                    body = json.dumps({"data_set_description": {
                        "id": "42468", "name": "hls4ml_lhc_jets_hlf", "format": "ARFF",
                        "file_id": "99", "md5_checksum": fake.md5, **fake.extra}}).encode()
                    self._send(200, body, "application/json")
                elif self.path == "/data/v1/download/99" and fake.download_status == 200:
                    self._send(200, fake.arff, "text/plain")
                elif self.path == "/mirror/jets.arff":
                    self._send(200, fake.arff, "text/plain")
                else:
                    self._send(404, b"not found", "text/plain")

            def _send(self, status, body, kind):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def test_download_from_a_fake_openml(tmp_path, cache_dir, no_proxy, monkeypatch):
    x, letters = raw_jets(50)
    arff = write_arff(tmp_path / "source.arff", x, letters).read_bytes()
    with _FakeOpenML(arff) as server:
        got = datasets.download_jets(tmp_path / "jets.arff", base_url=server.url, timeout=10)
        assert got == tmp_path / "jets.arff"
    assert got.read_bytes() == arff
    assert server.requests == ["/api/v1/json/data/42468", "/data/v1/download/99"]
    # An existing file is returned without asking the network (the server is gone).
    assert datasets.download_jets(got, base_url=server.url, timeout=1) == got
    # load_jets(download=True) with the URL from the environment, into the cache directory.
    with _FakeOpenML(arff) as server:
        monkeypatch.setenv("HETEROQ_OPENML_URL", server.url)
        jets = datasets.load_jets(download=True, timeout=10)
    assert jets.source == str(cache_dir / "openml-42468" / "hls4ml_lhc_jets_hlf.arff")
    reference = datasets.load_jets(tmp_path / "source.arff")
    np.testing.assert_array_equal(jets.x_train, reference.x_train)
    assert "OpenML 42468" in str(jets)


def test_download_dest_directory_must_exist_or_be_a_file(tmp_path, no_proxy):
    x, letters = raw_jets(5)
    arff = write_arff(tmp_path / "source.arff", x, letters).read_bytes()
    (tmp_path / "dir").mkdir()
    with _FakeOpenML(arff) as server:
        assert datasets.download_jets(tmp_path / "dir", base_url=server.url).parent == \
            tmp_path / "dir"
        named = datasets.download_jets(tmp_path / "new" / "jets.arff", base_url=server.url)
    assert named == tmp_path / "new" / "jets.arff" and named.read_bytes() == arff


def test_download_checks_md5_and_leaves_nothing_behind(tmp_path, no_proxy):
    x, letters = raw_jets(5)
    arff = write_arff(tmp_path / "source.arff", x, letters).read_bytes()
    with _FakeOpenML(arff, md5="0" * 32) as server:
        with pytest.raises(datasets.DownloadError, match="MD5 .* OpenML says 0000"):
            datasets.download_jets(tmp_path / "out.arff", base_url=server.url)
    assert list(tmp_path.iterdir()) == [tmp_path / "source.arff"]


def test_download_falls_back_to_the_description_url(tmp_path, no_proxy):
    x, letters = raw_jets(5)
    arff = write_arff(tmp_path / "source.arff", x, letters).read_bytes()
    with _FakeOpenML(arff, download_status=404) as server:
        server.extra["url"] = server.url + "/mirror/jets.arff"
        got = datasets.download_jets(tmp_path / "out.arff", base_url=server.url)
        assert server.requests[-2:] == ["/data/v1/download/99", "/mirror/jets.arff"]
    assert got.read_bytes() == arff
    with _FakeOpenML(arff, download_status=404) as server:
        with pytest.raises(datasets.DownloadError, match="answered HTTP 404") as info:
            datasets.download_jets(tmp_path / "none.arff", base_url=server.url)
    assert info.value.http_status == 404 and not (tmp_path / "none.arff").exists()
    with _FakeOpenML(arff, extra={"name": "something_else"}) as server:
        with pytest.raises(datasets.DownloadError, match="describes 'something_else'"):
            datasets.download_jets(tmp_path / "none.arff", base_url=server.url)


def test_download_without_network_says_so(tmp_path, no_proxy):
    # Connection refused: a port nobody listens on.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(datasets.DownloadError, match=r"cannot reach http://127\.0\.0\.1:\d+/api/"
                                                     r"v1/json/data/42468 .*no network access"):
        datasets.download_jets(tmp_path / "x.arff", base_url=f"http://127.0.0.1:{port}",
                               timeout=2)
    assert isinstance(datasets.DownloadError("x"), ConnectionError)
    # A host that accepts the connection but never answers: the timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(datasets.DownloadError, match=r"did not answer within 0.3 s"):
            datasets.download_jets(tmp_path / "x.arff", base_url=url, timeout=0.3)
    assert not (tmp_path / "x.arff").exists()
    with pytest.raises(ValueError, match="timeout"):
        datasets.download_jets(tmp_path / "x.arff", timeout=0)
    with pytest.raises(ValueError, match="base_url"):
        datasets.download_jets(tmp_path / "x.arff", base_url="ftp://example")


# ---------------------------------------------------------------------------------------------
# the surrogate


def test_surrogate_is_deterministic_and_has_the_schema():
    x, y = datasets.make_surrogate_jets(5000, seed=11)
    x2, y2 = datasets.make_surrogate_jets(5000, seed=11)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, _ = datasets.make_surrogate_jets(5000, seed=12)
    assert not np.array_equal(x, x3)
    assert x.shape == (5000, 16) and x.dtype == np.float64 and y.dtype == np.int64
    assert np.isfinite(x).all()
    col = {n: x[:, i] for i, n in enumerate(JET_FEATURES)}
    assert (col["mass_mmdt"] > 0).all() and (col["mass_mmdt"] < 500).all()
    assert (col["multiplicity"] >= 1).all()
    np.testing.assert_array_equal(col["multiplicity"], np.round(col["multiplicity"]))
    assert (col["zlogz"] < 0).all()
    assert ((col["c1_b0_mmdt"] > 0) & (col["c1_b0_mmdt"] < 0.5)).all()
    assert (x[:, 2:14] > 0).all()
    counts = np.bincount(y, minlength=5)
    assert counts.min() > 900 and counts.max() < 1100  # classes drawn uniformly
    # The classes differ where physics says they do (medians per class, default order g,q,w,z,t).
    med = {c: np.median(x[y == k], axis=0) for k, c in enumerate(datasets.JET_CLASSES)}
    mass, mult, d2 = (JET_FEATURES.index(n) for n in ("mass_mmdt", "multiplicity", "d2_b1_mmdt"))
    assert 75 < med["w"][mass] < med["z"][mass] < 100 < med["t"][mass]
    assert med["g"][mult] > med["q"][mult] and med["g"][mass] > med["q"][mass]
    assert med["w"][d2] < med["q"][d2] and med["z"][d2] < med["g"][d2]
    # label_order permutes the labels, nothing else.
    xo, yo = datasets.make_surrogate_jets(5000, seed=11, label_order="openml")
    np.testing.assert_array_equal(xo, x)
    np.testing.assert_array_equal(np.array(OPENML_CLASSES)[yo],
                                  np.array(datasets.JET_CLASSES)[y])
    with pytest.raises(ValueError, match="`n` must be >= 1"):
        datasets.make_surrogate_jets(0)
    with pytest.raises(TypeError, match="`seed` must be an integer"):
        datasets.make_surrogate_jets(10, seed=None)


def test_load_jets_surrogate_is_labelled_as_such():
    for jets in (datasets.load_jets(limit=1000), datasets.load_jets(surrogate=True, limit=1000)):
        assert jets.source == "surrogate" and jets.is_surrogate
        assert "SURROGATE" in str(jets) and "NOT the real hls4ml data" in str(jets)
        assert "nothing to cite" in jets.citation
        assert jets.x_train.shape == (800, 16) and jets.x_test.shape == (200, 16)
        assert jets.feature_names == JET_FEATURES
    a = datasets.load_jets(limit=1000, surrogate_seed=3)
    b = datasets.load_jets(limit=1000, surrogate_seed=3)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    x, y = datasets.make_surrogate_jets(1000, 3)
    train, _ = datasets.train_test_indices(1000)
    np.testing.assert_array_equal(a.y_train, y[train])
    with pytest.raises(ValueError, match="either a path or surrogate=True"):
        datasets.load_jets("jets.arff", surrogate=True)


def reference_mlp(hidden=(64, 32, 32)):
    """The reference float MLP 16-64-32-32-5 with ReLU (``hidden=()``: a linear model)."""
    layers, width = [], 16
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 5))


def train_and_score(jets, *, epochs, batch_size=1024, lr=1e-3, seed=0, hidden=(64, 32, 32)):
    """Trains an MLP (default the reference 16-64-32-32-5, ReLU) with Adam and cross-entropy on
    standardized jets; returns the test accuracy and the per-class accuracies."""
    jets = jets.as_tensors()
    torch.manual_seed(seed)
    model = reference_mlp(hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(jets.x_train), generator=gen)
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad()
            F.cross_entropy(model(jets.x_train[idx]), jets.y_train[idx]).backward()
            opt.step()
    with torch.no_grad():
        pred = model(jets.x_test).argmax(1)
    per_class = [(pred[jets.y_test == k] == k).float().mean().item() for k in range(5)]
    return (pred == jets.y_test).float().mean().item(), per_class


@contextlib.contextmanager
def threads(n):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_surrogate_difficulty_band():
    """A short training run of the reference MLP lands in a wide band around the real task's
    ~75%, and clearly above a linear model (the classes are not linearly separable)."""
    jets = datasets.load_jets(surrogate=True, limit=20000, surrogate_seed=1)
    with threads(1):  # a tiny model: one thread is fastest, and immune to a busy machine
        mlp, per_class = train_and_score(jets, epochs=8, batch_size=256, lr=3e-3)
        linear, _ = train_and_score(jets, epochs=8, batch_size=256, lr=3e-3, hidden=())
    assert 0.65 <= mlp <= 0.85, mlp
    assert mlp > linear + 0.04, (mlp, linear)
    assert min(per_class) > 0.5, per_class  # every class is learnable, none is trivial alone
    assert max(per_class) < 0.97, per_class


# ---------------------------------------------------------------------------------------------
# IDX and Fashion-MNIST


def idx_bytes(array, code):
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                        *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_read_idx_all_types_gzip_or_not(tmp_path):
    rng = np.random.default_rng(0)
    for code, dtype in ((0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32),
                        (0x0D, np.float32), (0x0E, np.float64)):
        a = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
        raw = tmp_path / f"a{code}.idx"
        raw.write_bytes(idx_bytes(a, code))
        packed = tmp_path / f"a{code}.idx.gz"
        packed.write_bytes(gzip.compress(idx_bytes(a, code)))
        for path in (raw, packed):
            got = datasets.read_idx(path)
            assert got.dtype == np.dtype(dtype) and got.dtype.isnative
            np.testing.assert_array_equal(got, a)


def test_read_idx_errors_name_the_file(tmp_path):
    good = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4), 0x08)
    cases = {"magic.idx": (b"\x08\x03" + good[2:], "bad magic number"),
             "type.idx": (good[:2] + b"\x07" + good[3:], "bad magic number"),
             "short.idx": (good[:-1], r"needs 12 bytes of data, found 11 \(truncated file\)"),
             "long.idx": (good + b"\x00", r"found 13 \(trailing bytes\)"),
             "header.idx": (good[:6], "truncated IDX header"),
             "empty.idx": (b"", "bad magic number"),
             "gz.idx": (gzip.compress(good)[:-6], "corrupt gzip stream")}
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=re.escape(str(tmp_path / name)) + ".*" + message):
            datasets.read_idx(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="nothere.idx"):
        datasets.read_idx(tmp_path / "nothere.idx")


def write_fake_fashion(directory, n_train=30, n_test=12, gz=True):
    rng = np.random.default_rng(1)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        for kind, a in (("images-idx3", images), ("labels-idx1", labels)):
            data = idx_bytes(a, 0x08)
            name = f"{prefix}-{kind}-ubyte" + (".gz" if gz else "")
            (directory / name).write_bytes(gzip.compress(data) if gz else data)
        out[prefix] = (images, labels)
    return out


def test_load_fashion_mnist_from_a_directory(tmp_path):
    for gz in (True, False):
        d = tmp_path / f"fm{gz}"
        data = write_fake_fashion(d, gz=gz)
        x, y = datasets.load_fashion_mnist("train", data_dir=d)
        assert x.shape == (30, 784) and x.dtype == np.float32 and y.dtype == np.int64
        np.testing.assert_allclose(x, data["train"][0].reshape(30, -1) / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(y, data["train"][1])
        x, y = datasets.load_fashion_mnist("test", d, limit=5, flatten=False, normalize=False,
                                           as_tensors=True)
        assert x.shape == (5, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
        assert torch.equal(x, torch.from_numpy(data["t10k"][0][:5]))


def test_load_fashion_mnist_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        datasets.load_fashion_mnist(data_dir=tmp_path / "none")
    monkeypatch.setenv("HETEROQ_FASHION_MNIST", str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "none"))):
        datasets.load_fashion_mnist()
    d = tmp_path / "fm"
    write_fake_fashion(d, n_train=5)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.gz not found"):
        datasets.load_fashion_mnist("test", d)
    (d / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(4, np.uint8), 0x08)))
    with pytest.raises(ValueError, match="expected 5 uint8 labels"):
        datasets.load_fashion_mnist("train", d)
    with pytest.raises(ValueError, match="split must be"):
        datasets.load_fashion_mnist("validation", d)


@pytest.mark.skipif(not pathlib.Path(datasets.FASHION_MNIST_DIR).is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_load_fashion_mnist_debian_package():
    x, y = datasets.load_fashion_mnist("test")
    assert x.shape == (10000, 784) and y.shape == (10000,)
    assert 0.0 <= x.min() and x.max() == 1.0
    assert np.bincount(y).tolist() == [1000] * 10  # Fashion-MNIST's test set is balanced
    x, y = datasets.load_fashion_mnist("train", limit=100)
    assert x.shape == (100, 784) and set(y.tolist()) <= set(range(10))


def test_fashion_mnist_example_runs_on_the_reader(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "fashion_mnist_mlp", REPO / "examples" / "python" / "fashion_mnist_mlp.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    d = tmp_path / "fm"
    write_fake_fashion(d, n_train=64, n_test=16)
    assert example.main(["--epochs", "1", "--data-dir", str(d), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "64 training / 16 test images" in out and "test accuracy: float" in out
    assert example.main(["--data-dir", str(tmp_path / "none")]) == 1
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# docs


def test_docs_examples_run(tmp_path, monkeypatch, capsys):
    """Every ```python block of docs/datasets.md runs as written (offline)."""
    text = (REPO / "docs" / "datasets.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HETEROQ_CACHE", str(tmp_path / "cache"))
    namespace = {}
    for block in blocks:
        if "load_fashion_mnist" in block and not pathlib.Path(datasets.FASHION_MNIST_DIR).is_dir():
            continue  # Debian's dataset-fashion-mnist is not installed here
        exec(compile(block, "docs/datasets.md", "exec"), namespace)  # noqa: S102 (our docs)
    out = capsys.readouterr().out
    assert "SURROGATE" in out


# ---------------------------------------------------------------------------------------------
# the calibration (run as a script)


def calibrate(argv=None):
    p = argparse.ArgumentParser(description="Calibration of heteroq's surrogate jets")
    p.add_argument("--calibrate", action="store_true")
    p.add_argument("--jets", type=int, default=200_000)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--references", action="store_true",
                   help="also score logistic regression, gradient-boosted trees (sklearn) and "
                        "a larger MLP (16-256-256-256-5, 40 epochs)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"surrogate calibration: {args.jets} jets (80/20 split, standardized), reference MLP "
          f"16-64-32-32-5 ReLU, Adam lr 1e-3, batch 1024, {args.epochs} epochs")
    accs = []
    for seed in range(args.seeds):
        start = time.time()
        jets = datasets.load_jets(surrogate=True, limit=args.jets, surrogate_seed=seed)
        acc, per_class = train_and_score(jets, epochs=args.epochs, seed=seed)
        accs.append(acc)
        print(f"  surrogate_seed={seed}: test accuracy {acc:.4f}; per class "
              + ", ".join(f"{c} {a:.3f}" for c, a in zip(jets.class_names, per_class))
              + f" ({time.time() - start:.0f} s)", flush=True)
    print(f"mean {np.mean(accs):.4f}, min {np.min(accs):.4f}, max {np.max(accs):.4f} "
          f"(real data, published: 0.750-0.764)")
    if args.references:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        jets = datasets.load_jets(surrogate=True, limit=args.jets, surrogate_seed=0)
        lr = LogisticRegression(max_iter=1000).fit(jets.x_train, jets.y_train)
        print(f"  logistic regression: {lr.score(jets.x_test, jets.y_test):.4f}")
        gb = HistGradientBoostingClassifier(max_iter=500, random_state=0)
        print(f"  gradient-boosted trees: "
              f"{gb.fit(jets.x_train, jets.y_train).score(jets.x_test, jets.y_test):.4f}")
        acc, _ = train_and_score(jets, epochs=40, hidden=(256, 256, 256))
        print(f"  larger MLP 16-256-256-256-5, 40 epochs: {acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(calibrate())
