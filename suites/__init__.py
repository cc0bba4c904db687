"""Built-in suite manifests and their bundled sample data (installed as pytest_unlearn.suites)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
SEMEVAL = HERE / "semeval" / "manifest.toml"
GENMU = HERE / "genmu" / "manifest.toml"
GENMU_MINI = HERE / "genmu-mini" / "manifest.toml"
TOFU = HERE / "tofu" / "manifest.toml"
TOFU_MINI = HERE / "tofu-mini" / "manifest.toml"
MUSE = HERE / "muse" / "manifest.toml"
MUSE_MINI = HERE / "muse-mini" / "manifest.toml"
