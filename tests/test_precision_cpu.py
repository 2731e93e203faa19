"""mixed_bfloat16 is only fast where the CPU has bfloat16 in hardware: the trainer says so."""

from __future__ import annotations

from pathlib import Path

from emotion_tf.train.trainer import cpu_has_native_bfloat16


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 fma {flags}\n")
    return path


def test_avx2_only_cpu_has_no_native_bfloat16(tmp_path: Path) -> None:
    assert not cpu_has_native_bfloat16(_cpuinfo(tmp_path, ""))


def test_avx512_bf16_and_amx_count_as_native(tmp_path: Path) -> None:
    assert cpu_has_native_bfloat16(_cpuinfo(tmp_path, "avx512f avx512_bf16"))
    assert cpu_has_native_bfloat16(_cpuinfo(tmp_path, "amx_tile amx_bf16"))


def test_unreadable_cpuinfo_says_nothing(tmp_path: Path) -> None:
    assert cpu_has_native_bfloat16(tmp_path / "missing")
