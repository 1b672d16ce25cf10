"""iter_blocks: whole lines, every byte once, line numbers that count every line, whatever the
block size, line lengths, BOM or missing last newline."""

import codecs
import random

import pytest

from obslab.ocsf.textio import iter_blocks


def _lines(rng: random.Random, n: int) -> list[bytes]:
    # mostly short lines, some empty, some longer than the smallest blocks below
    sizes = [rng.choice([0, 1, 5, 40, 200, 3000]) for _ in range(n)]
    return [bytes(rng.choice(b"abcxyz{}:,\"0123\r") for _ in range(k)) for k in sizes]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("chunk", [1, 7, 64, 1000, 1 << 20])
def test_blocks_cover_the_file_in_whole_lines(tmp_path, seed, chunk):
    rng = random.Random(seed)
    lines = _lines(rng, 300)
    body = b"\n".join(lines) + (b"\n" if seed % 2 else b"")  # odd seeds: a final newline
    bom = codecs.BOM_UTF8 if seed % 3 == 0 else b""
    path = tmp_path / "f.txt"
    path.write_bytes(bom + body)
    blocks = list(iter_blocks(path, chunk_bytes=chunk))
    assert b"".join(b.data for b in blocks) == body  # every byte once, the BOM dropped
    expect_no = 1
    for b in blocks[:-1]:
        assert b.data.endswith(b"\n")  # a block never splits a line
    for b in blocks:
        assert b.first_line_no == expect_no
        expect_no += b.n_lines
    assert expect_no - 1 == len(lines)


def test_a_file_without_final_newline_is_one_block(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"a\nb\nc")
    blocks = list(iter_blocks(path))
    assert [b.data for b in blocks] == [b"a\nb\nc"] and blocks[0].lines == [b"a", b"b", b"c"]


def test_empty_file_has_no_blocks(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"")
    assert list(iter_blocks(path)) == []
