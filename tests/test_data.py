"""The course data set: reproducibility, realism constraints, schema validation."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from dpcourse import data


@pytest.fixture(scope="module")
def shipped() -> pd.DataFrame:
    return data.load_transactions()


def test_shipped_file_is_exactly_the_generator_output():
    regenerated = data.generate_transactions(data.DEFAULT_ROWS, data.DEFAULT_SEED)
    expected = regenerated.to_csv(index=False, lineterminator="\n").encode()
    assert gzip.decompress(data.DEFAULT_PATH.read_bytes()) == expected


def test_shipped_file_is_small_enough():
    assert data.DEFAULT_PATH.stat().st_size <= 8 * 2**20


def test_save_is_byte_for_byte_reproducible(tmp_path):
    a = data.save_transactions(data.generate_transactions(5000, seed=1), tmp_path / "a.csv.gz")
    b = data.save_transactions(data.generate_transactions(5000, seed=1), tmp_path / "b.csv.gz")
    assert a.read_bytes() == b.read_bytes()
    other = data.save_transactions(data.generate_transactions(5000, seed=2), tmp_path / "c.csv.gz")
    assert other.read_bytes() != a.read_bytes()


def test_size_customers_and_fraud_rate(shipped):
    assert len(shipped) >= 100_000
    assert shipped["customer_id"].nunique() >= 10_000
    assert 0.005 <= shipped["is_fraud"].mean() <= 0.02
    per_customer = shipped.groupby("customer_id").size()
    assert per_customer.min() >= 1
    assert per_customer.max() >= 50, "some customers must have many transactions"
    assert per_customer.std() > per_customer.mean() / 2, "transaction counts must vary"


def test_columns_a_fraud_analyst_recognises(shipped):
    assert list(shipped.columns) == list(data.COURSE_COLUMNS)
    assert set(shipped["merchant_category"]) == set(data.MERCHANT_CATEGORIES)
    assert shipped["hour"].between(0, 23).all()
    assert (shipped["amount"] > 0).all()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fraud_is_nonlinear_and_hard():
    """A small MLP beats logistic regression, and the best AUPRC stays well below 1."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.neural_network import MLPClassifier

    split = data.load_split()
    linear = LogisticRegression(max_iter=500).fit(split.x_train, split.y_train)
    mlp = MLPClassifier((32, 16), max_iter=30, random_state=0)
    mlp.fit(split.x_train, split.y_train)
    ap_linear = average_precision_score(split.y_test, linear.predict_proba(split.x_test)[:, 1])
    ap_mlp = average_precision_score(split.y_test, mlp.predict_proba(split.x_test)[:, 1])
    assert ap_mlp > ap_linear + 0.03
    assert ap_mlp < 0.8


def test_split_is_stratified_and_scaled_with_the_fixed_constants():
    df = data.load_transactions()
    split = data.split_data(df)
    assert split.n_train + len(split.y_test) == data.DEFAULT_ROWS
    assert abs(split.y_train.mean() - split.y_test.mean()) < 0.002
    x, _, names = data.feature_matrix(df)
    centre, scale = np.array([data.FEATURE_SCALING["course"][n] for n in names]).T
    expected = ((x - centre) / scale).astype(np.float32)
    both = np.concatenate([split.x_train, split.x_test])
    np.testing.assert_array_equal(np.sort(both, axis=0), np.sort(expected, axis=0))
    assert split.x_train.dtype == np.float32
    assert split.customer_train is not None and len(split.customer_train) == split.n_train


def test_scaling_of_a_row_does_not_depend_on_the_other_rows():
    """No statistic of the data enters: removing rows (or changing them) leaves every other
    row's scaled features exactly as they were, unlike standardising with the data's mean."""
    df = data.generate_transactions(2000, seed=3)
    x, _, names = data.feature_matrix(df)
    full = data.scale_features(x, names, "course")
    changed = x.copy()
    changed[:100] *= 50.0  # extreme rows
    np.testing.assert_array_equal(data.scale_features(changed, names, "course")[100:], full[100:])
    np.testing.assert_array_equal(data.scale_features(x[500:], names, "course"), full[500:])


def test_fixed_scaling_standardises_a_fresh_public_draw():
    """The constants are the generator's population values: on a draw with another seed,
    sharing no row with the course data, every scaled feature has mean near 0 and standard
    deviation near 1 (the heavy-tailed velocity and the rare flags vary most)."""
    df = data.generate_transactions(60_000, seed=data.DEFAULT_SEED + 1)
    x, _, names = data.feature_matrix(df)
    scaled = data.scale_features(x, names, "course")
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=0.1)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, atol=0.2)  # velocity: 1.16 here
    assert set(names) == set(data.FEATURE_SCALING["course"])


def test_scale_features_names_what_it_cannot_scale():
    with pytest.raises(ValueError, match=r"^schema must be one of \['course', 'kaggle'\]"):
        data.scale_features(np.zeros((2, 1)), ["log_amount"], "mine")
    with pytest.raises(ValueError, match=r"^feature_names has no fixed scaling for \['V1'\]"):
        data.scale_features(np.zeros((2, 1)), ["V1"], "course")


def test_generation_is_deterministic_for_a_seed():
    pd.testing.assert_frame_equal(
        data.generate_transactions(2000, seed=5), data.generate_transactions(2000, seed=5)
    )


@pytest.mark.parametrize("bad", [0, 50, 12.5, "many"])
def test_generate_rejects_bad_row_counts(bad):
    with pytest.raises(ValueError, match="n_rows"):
        data.generate_transactions(bad)


def test_missing_column_is_named(tmp_path):
    df = data.generate_transactions(500, seed=0).drop(columns=["amount"])
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    with pytest.raises(ValueError, match="'amount' is missing"):
        data.load_transactions(path)


def test_malformed_column_is_named(tmp_path):
    df = data.generate_transactions(500, seed=0)
    df["hour"] = df["hour"].astype(str) + "h"
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    with pytest.raises(ValueError, match="'hour' must be numeric"):
        data.load_transactions(path)


def test_label_must_be_binary(tmp_path):
    df = data.generate_transactions(500, seed=0)
    df.loc[0, "is_fraud"] = 2
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    with pytest.raises(ValueError, match="'is_fraud' must contain only 0 and 1"):
        data.load_transactions(path)


def test_file_without_a_label_column(tmp_path):
    path = tmp_path / "nolabel.csv"
    pd.DataFrame({"a": [1, 2]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"'is_fraud'.*'Class'"):
        data.load_transactions(path)


def test_missing_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="No data file"):
        data.load_transactions(tmp_path / "nope.csv")


def test_kaggle_schema_is_detected_and_loaded(kaggle_csv):
    df = data.load_transactions(kaggle_csv)
    assert data.detect_schema(df) == "kaggle"
    x, y, names = data.feature_matrix(df)
    assert x.shape == (300, 30) and names[:2] == ["V1", "V2"]
    assert y.sum() == 6
    split = data.load_split(kaggle_csv)
    assert split.customer_train is None
    assert split.n_features == 30


def test_kaggle_schema_missing_column(kaggle_csv, tmp_path):
    df = pd.read_csv(kaggle_csv).drop(columns=["V17"])
    path = tmp_path / "cc.csv"
    df.to_csv(path, index=False)
    with pytest.raises(ValueError, match="'V17' is missing from the kaggle"):
        data.load_transactions(path)


def test_bad_test_fraction():
    with pytest.raises(ValueError, match="test_fraction"):
        data.split_data(data.generate_transactions(500), test_fraction=1.5)


# --------------------------------------------------------------------------- cap_per_customer


def _toy_split(customers: list[int]) -> data.Split:
    """A split whose training rows are numbered 0..n-1 (in x and y) for ``customers``."""
    n = len(customers)
    rows = np.arange(n, dtype=np.float32)[:, None]
    return data.Split(
        x_train=rows,
        y_train=np.arange(n, dtype=np.int32),
        x_test=np.zeros((2, 1), dtype=np.float32),
        y_test=np.array([0, 1], dtype=np.int32),
        feature_names=("row",),
        customer_train=np.array(customers),
        customer_test=np.array([0, 1]),
    )


def test_cap_per_customer_keeps_at_most_k_random_rows_per_customer():
    customers = [7] * 10 + [3] * 2 + [5] + [9] * 4
    toy = _toy_split(customers)
    capped = data.cap_per_customer(toy, 3, seed=1)
    kept = capped.y_train  # the original row numbers
    assert np.all(np.diff(kept) > 0)  # original order, no duplicates
    assert np.array_equal(capped.x_train[:, 0], kept)
    assert np.array_equal(capped.customer_train, np.array(customers)[kept])
    counts = {c: int((capped.customer_train == c).sum()) for c in (7, 3, 5, 9)}
    assert counts == {7: 3, 3: 2, 5: 1, 9: 3}  # min(n_c, k)
    assert capped.x_test is toy.x_test and capped.customer_test is toy.customer_test
    # A large cap keeps everything; different seeds keep different rows of customer 7.
    assert np.array_equal(data.cap_per_customer(toy, 10).y_train, np.arange(len(customers)))
    chosen = {tuple(data.cap_per_customer(toy, 3, seed=s).y_train[:3]) for s in range(20)}
    assert len(chosen) > 5


def test_cap_per_customer_choice_is_uniform_within_a_customer():
    toy = _toy_split([0] * 5)
    hits = np.zeros(5)
    for seed in range(2000):
        hits[data.cap_per_customer(toy, 2, seed=seed).y_train] += 1
    # Each of the 5 rows is kept with probability 2/5: 800 of 2000 draws, sd ≈ 22.
    assert np.all(np.abs(hits - 800) < 5 * np.sqrt(2000 * 0.4 * 0.6))


def test_cap_per_customer_on_the_course_data():
    split = data.load_split()
    capped = data.cap_per_customer(split, 5, seed=0)
    _, counts = np.unique(split.customer_train, return_counts=True)
    assert capped.n_train == np.minimum(counts, 5).sum()
    assert np.unique(capped.customer_train, return_counts=True)[1].max() == 5
    assert capped.x_train.dtype == np.float32 and capped.n_features == split.n_features


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_cap_per_customer_rejects_bad_caps(bad):
    with pytest.raises(ValueError, match="max_per_customer must be an integer >= 1"):
        data.cap_per_customer(_toy_split([1, 1, 2]), bad)


def test_cap_per_customer_needs_customers():
    toy = _toy_split([1, 2])
    anonymous = data.Split(**{**toy.__dict__, "customer_train": None})
    with pytest.raises(ValueError, match=r"split\.customer_train is None"):
        data.cap_per_customer(anonymous, 2)
    with pytest.raises(ValueError, match="split must be a Split, got dict"):
        data.cap_per_customer({}, 2)


# --------------------------------------------------------------------------- public data set
@pytest.fixture(scope="module")
def public() -> pd.DataFrame:
    return data.load_transactions(data.PUBLIC_PATH)


def test_shipped_public_file_is_exactly_the_generator_output():
    regenerated = data.generate_transactions(
        data.PUBLIC_ROWS, data.PUBLIC_SEED, data.PUBLIC_POPULATION
    )
    expected = regenerated.to_csv(index=False, lineterminator="\n").encode()
    assert gzip.decompress(data.PUBLIC_PATH.read_bytes()) == expected
    assert data.PUBLIC_SEED != data.DEFAULT_SEED
    assert data.PUBLIC_PATH.stat().st_size <= 4 * 2**20


def test_public_set_shares_no_customer_and_no_transaction_with_the_private_set(shipped, public):
    assert set(public["customer_id"]).isdisjoint(shipped["customer_id"])
    assert public["customer_id"].min() == data.PUBLIC_POPULATION.first_customer_id
    assert shipped["customer_id"].max() < data.PUBLIC_POPULATION.first_customer_id
    columns = [c for c in data.COURSE_COLUMNS if c not in ("transaction_id", "customer_id")]
    both = public[columns].merge(shipped[columns], how="inner", on=columns)
    assert both.empty, "a public row equals a private row in every column"


def test_public_set_is_related_but_shifted(shipped, public):
    """The same schema and scaling, with the shifts its datasheet states: lower amounts,
    less online retail, more fraud, fraud abroad a smaller share of the fraud."""
    assert list(public.columns) == list(shipped.columns)
    assert len(public) == data.PUBLIC_ROWS
    assert public["amount"].median() < 0.95 * shipped["amount"].median()
    share = {
        name: df["merchant_category"].eq("online_retail").mean()
        for name, df in (("public", public), ("private", shipped))
    }
    assert share["public"] < share["private"] - 0.03
    assert 0.013 < public["is_fraud"].mean() < 0.017 and shipped["is_fraud"].mean() < 0.012

    def abroad_share(df: pd.DataFrame) -> float:
        return df.loc[df["is_fraud"] == 1, "foreign"].mean()

    assert abroad_share(public) < abroad_share(shipped)
    x, _, names = data.feature_matrix(public)
    scaled = data.scale_features(x, names, "course")  # the same fixed public constants
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=0.25)


def test_default_population_is_the_course_data():
    pd.testing.assert_frame_equal(
        data.generate_transactions(500, 7),
        data.generate_transactions(500, 7, data.COURSE_POPULATION),
    )
    with pytest.raises(ValueError, match=r"^population must be a data.Population"):
        data.generate_transactions(500, 7, "public")
