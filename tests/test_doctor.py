"""`matinee doctor` against real services: INN2 with a login (right and wrong password),
the stand-in TMDB and indexer, the programs Matinee runs; and a broken configuration."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fake_newznab import FakeNewznabFactory
from tests.support.fake_tmdb import TOKEN, FakeTmdbFactory
from tests.support.inn2 import Inn2Server
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, Moto

pytestmark = pytest.mark.inn2


def doctor(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "doctor", "--config", str(config)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def test_doctor_checks_everything_a_new_user_gets_wrong(
    inn2: Inn2Server,
    fake_tmdb: FakeTmdbFactory,
    fake_newznab: FakeNewznabFactory,
    tmp_path: Path,
) -> None:
    tmdb = await fake_tmdb(token=TOKEN)
    geek = await fake_newznab(name="geek", apikey="g" * 32)
    config = tmp_path / "config.toml"

    def write(password: str, indexer_key: str, transcode: str = "") -> None:
        config.write_text(
            f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
            f'[tmdb]\ntoken = "{TOKEN}"\nbase_url = "{tmdb.url}"\n'
            f'[[indexers]]\nname = "geek"\nurl = "{geek.url}"\napi_key = "{indexer_key}"\n'
            f'[[usenet.servers]]\nname = "news"\nhost = "{inn2.host}"\nport = {inn2.auth_port}\n'
            f'tls = false\nusername = "{inn2.username}"\npassword = "{password}"\n'
            f"[downloads]\nmin_free_gb = 0.001\n{transcode}"
        )

    write(inn2.password, "g" * 32)
    good = await asyncio.to_thread(doctor, config)
    assert good.returncode == 0, good.stdout + good.stderr
    lines = good.stdout.splitlines()
    names = (
        "configuration",
        "ffmpeg",
        "par2",
        "Video encoder",
        "Usenet news",
        "TMDB",
        "Indexer geek",
    )
    for name in names:
        assert any(line.startswith("[ ok ]") and name in line for line in lines), (name, lines)
    assert "Everything Matinee needs is configured and answering." in good.stdout

    # A hardware encoder that does not work here: a warning, and libx264 does the work.
    write("wrong password", "k" * 32, '[transcode]\nhardware = "vaapi"\ndevice = "/dev/dri/none"\n')
    bad = await asyncio.to_thread(doctor, config)
    assert bad.returncode == 1
    assert "[FAIL] Usenet news" in bad.stdout and "Check username and password" in bad.stdout
    assert "[FAIL] Indexer geek" in bad.stdout and "api_key" in bad.stdout
    assert "[warn] Video encoder: VAAPI is configured but not used" in bad.stdout
    assert "remove [transcode] hardware" in bad.stdout
    assert "wrong password" not in bad.stdout + bad.stderr  # secrets never printed
    assert "k" * 32 not in bad.stdout + bad.stderr

    config.write_text("[server]\nport = 0\n")
    broken = await asyncio.to_thread(doctor, config)
    assert broken.returncode == 2
    assert "server.port: must be an integer from 1 to 65535" in broken.stderr


async def test_doctor_checks_the_r2_bucket(moto_server: Moto, tmp_path: Path) -> None:
    bucket = await asyncio.to_thread(moto_server.new_bucket)
    config = tmp_path / "config.toml"

    def write(name: str) -> None:
        config.write_text(
            f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
            f'[r2]\nenabled = true\nendpoint = "{moto_server.url}"\nbucket = "{name}"\n'
            f'access_key_id = "{ACCESS_KEY}"\nsecret_access_key = "{SECRET_KEY}"\n'
            "path_style = true\n"
        )

    write(bucket)
    good = await asyncio.to_thread(doctor, config)
    assert "[ ok ] R2: Mirroring finished movies" in good.stdout, good.stdout + good.stderr
    write("no-such-bucket")
    bad = await asyncio.to_thread(doctor, config)
    assert bad.returncode == 1
    assert "[FAIL] R2: The bucket does not exist: create it, or check [r2] bucket." in bad.stdout
    assert SECRET_KEY not in bad.stdout + bad.stderr
