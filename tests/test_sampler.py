from unigendet_train.sampler import StepSampler


def test_deterministic_and_resumable():
    a = StepSampler(None, 10, 4, seed=1)
    b = StepSampler(None, 10, 4, seed=1)
    seq = [a.indices(s) for s in range(6)]
    assert [b.indices(s) for s in range(3, 6)] == seq[3:]  # a fresh sampler resumes mid-run
    flat = [i for s in seq[:5] for i in s]  # 20 draws = 2 epochs of 10
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    assert seq != [StepSampler(None, 10, 4, seed=2).indices(s) for s in range(6)]


def test_ranks_and_micro_batches_partition_the_global_batch():
    one = StepSampler(None, 50, 8, seed=0, accum=1)
    for step in range(4):
        ranks = [StepSampler(None, 50, 2, seed=0, rank=r, world=2, accum=2) for r in range(2)]
        got = [i for m in range(2) for r in ranks for i in r.indices(step, m)]
        assert got == one.indices(step)


def test_label_balance_alternates():
    labels = [0] * 3 + [1] * 9
    s = StepSampler(labels, 12, 6, seed=0, balanced=True)
    drawn = [labels[i] for step in range(4) for i in s.indices(step)]
    assert drawn == [0, 1] * 12
