"""A checkpoint a user names (losslab.run.checkpoints): a .ckpt file, or a run folder standing
for its last.ckpt; what is no checkpoint is refused by the key it came through."""

from __future__ import annotations

import pytest
import torch

from losslab.errors import UsageError
from losslab.run.checkpoints import find_checkpoint, read_checkpoint


def test_a_run_folder_stands_for_its_last_checkpoint_and_a_file_for_itself(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    ckpt = tmp_path / "checkpoints" / "epoch=1-step=5.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    (tmp_path / "checkpoints" / "last.ckpt").symlink_to(ckpt.name)
    assert find_checkpoint(tmp_path, "init_from") == tmp_path / "checkpoints" / "last.ckpt"
    assert find_checkpoint(ckpt, "init_from") == ckpt
    assert read_checkpoint(tmp_path / "checkpoints" / "last.ckpt", "init_from") == {
        "state_dict": {}
    }


def test_what_is_no_checkpoint_is_refused_naming_the_key(tmp_path):
    with pytest.raises(
        UsageError, match=r"^init_from=.*: this folder holds no checkpoints/last.ckpt"
    ):
        find_checkpoint(tmp_path, "init_from")
    with pytest.raises(
        UsageError, match=r"^init_from=.*/none: no such checkpoint file or run folder"
    ):
        find_checkpoint(tmp_path / "none", "init_from")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(
        UsageError, match=r"^ckpt_path=.*text.ckpt: not a checkpoint torch can load"
    ):
        read_checkpoint(tmp_path / "text.ckpt", "ckpt_path")
    torch.save({"weights": 1}, tmp_path / "plain.pt")
    with pytest.raises(UsageError, match=r"not a Lightning checkpoint \(no state_dict\)"):
        read_checkpoint(tmp_path / "plain.pt", "checkpoint")
    with pytest.raises(UsageError, match=r"^ckpt_path=.*: no such checkpoint file$"):
        read_checkpoint(tmp_path / "missing.ckpt", "ckpt_path")
