import numpy as np
import pytest

from fluxparity.data import PROBES, Dataset, generate_dataset, pack


def test_lengths_values_and_labels_follow_the_tutorial():
    data = generate_dataset(500, seed=3)
    assert len(data.train_sequences) == 500 and len(data.test_sequences) == 1000
    for seqs, labels in ((data.train_sequences, data.train_labels), (data.test_sequences, data.test_labels)):
        lengths = np.array([len(s) for s in seqs])
        assert lengths.min() == 2 and lengths.max() == 7  # uniform 2..7: both ends occur in 500 draws
        values = np.concatenate(seqs)
        assert values.dtype == np.float64
        assert set(np.unique(values)) == set(range(1, 11))
        np.testing.assert_array_equal(labels, [s.sum() for s in seqs])


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = generate_dataset(50, seed=7), generate_dataset(50, seed=7), generate_dataset(50, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a.train_sequences, b.train_sequences))
    assert not all(len(x) == len(y) and np.array_equal(x, y) for x, y in zip(a.train_sequences, c.train_sequences))


def test_probes_are_the_tutorials():
    data = generate_dataset(1, seed=0)
    assert [s.tolist() for s in data.probes] == [[1, 2, 3], [1, -2, 30], [1, 0, 30], [1, 1, 1]]
    assert data.probe_labels.tolist() == [6, 29, 31, 3]
    assert len(PROBES) == 4


def test_pack_concatenates_in_order():
    data = generate_dataset(30, seed=1)
    values, lengths = pack(data.train_sequences)
    assert values.dtype == np.float64 and lengths.dtype == np.int64
    np.testing.assert_array_equal(lengths, [len(s) for s in data.train_sequences])
    np.testing.assert_array_equal(values, np.concatenate(data.train_sequences))


def test_dict_round_trip():
    data = generate_dataset(10, seed=2)
    back = type(data).from_dict(data.to_dict())
    for field in ("train_labels", "test_labels"):
        np.testing.assert_array_equal(getattr(back, field), getattr(data, field))
    for field in ("train_sequences", "test_sequences", "probes"):
        assert len(getattr(back, field)) == len(getattr(data, field))
        assert all(np.array_equal(a, b) for a, b in zip(getattr(back, field), getattr(data, field)))


def test_from_dict_makes_every_array_float64_even_from_integers():
    # a report.json written by hand (or by another tool) may hold integers: every array is float64 anyway
    back = Dataset.from_dict({"train_sequences": [[1, 2]], "train_labels": [3], "test_sequences": [[4]],
                              "test_labels": [4], "probes": [[1, 2, 3]]})
    arrays = [back.train_labels, back.test_labels, *back.train_sequences, *back.test_sequences, *back.probes]
    assert [a.dtype for a in arrays] == [np.float64] * 5


@pytest.mark.parametrize("bad", [0, -5, 2.5])
def test_bad_sample_count_is_rejected(bad):
    with pytest.raises(ValueError, match=str(bad)):
        generate_dataset(bad, seed=0)


def test_pack_of_no_sequences_is_two_empty_arrays():
    values, lengths = pack([])
    assert values.shape == (0,) and values.dtype == np.float64
    assert lengths.shape == (0,) and lengths.dtype == np.int64


def test_a_dataset_needs_at_least_one_probe_and_says_so():
    # every report shows and compares the probes' predictions: none is refused when the data is built,
    # not as NumPy's concatenate error after training
    x, y = [np.ones((3, 1))], [np.ones(1)]
    with pytest.raises(ValueError, match=r"no probe samples: give at least one \(probe_x, probe_y\)"):
        Dataset(x, y, x, y, (), ())
    assert Dataset(x, y, x, y, x, y).probe_names == ("probe 1",)
