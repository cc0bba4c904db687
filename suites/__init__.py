"""Built-in suite manifests and their bundled sample data (installed as pytest_unlearn.suites)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
SEMEVAL = HERE / "semeval" / "manifest.toml"
GENMU = HERE / "genmu" / "manifest.toml"
GENMU_MINI = HERE / "genmu-mini" / "manifest.toml"
TOFU = HERE / "tofu" / "manifest.toml"
TOFU_MINI = HERE / "tofu-mini" / "manifest.toml"
WMDP = HERE / "wmdp" / "manifest.toml"
WMDP_MINI = HERE / "wmdp-mini" / "manifest.toml"
MUFAC = HERE / "mufac" / "manifest.toml"
MUFAC_MINI = HERE / "mufac-mini" / "manifest.toml"
MUCAC = HERE / "mucac" / "manifest.toml"
MUCAC_MINI = HERE / "mucac-mini" / "manifest.toml"
MUSE = HERE / "muse" / "manifest.toml"
MUSE_MINI = HERE / "muse-mini" / "manifest.toml"
EVALLEARN_MINI = HERE / "evallearn-mini" / "manifest.toml"
