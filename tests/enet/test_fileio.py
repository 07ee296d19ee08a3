import os
import stat

import pytest

from enet.errors import EnetError
from enet.fileio import atomic_open, write_bytes


def test_atomic_write_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o644


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_open(tmp_path / "b.txt") as f:
            f.write("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_created_and_a_file_in_the_way_is_one_line_error(tmp_path):
    write_bytes(tmp_path / "new" / "sub" / "c.bin", b"x")  # docs/cli.md: missing folders are created
    assert (tmp_path / "new" / "sub" / "c.bin").read_bytes() == b"x"
    (tmp_path / "afile").write_bytes(b"")
    with pytest.raises(EnetError, match="cannot create folder"):
        write_bytes(tmp_path / "afile" / "sub" / "c.bin", b"x")
    assert not (tmp_path / "afile" / "sub").exists()
