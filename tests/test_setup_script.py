"""scripts/setup.sh, run for real in a throwaway copy of this checkout: where the package lands.

Fast (default suite): an activated virtual environment (it reuses the running interpreter's
torch through a ``.pth`` line, so nothing large is installed), the missing-``venv`` line and the
refusal of an externally managed Python. Slow (``-m slow``): the stock system Python with its
EXTERNALLY-MANAGED marker, as root and as a non-root user, which install torch into ``.venv``.
The machine's pip settings (``PIP_*``, the pip config files) are kept, as a user's would be.
"""

from __future__ import annotations

import os
import pwd
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = Path("/usr/bin/python3")


def checkout_copy(dest: Path) -> Path:
    """This checkout's files as git lists them (tracked and untracked, not ignored), at ``dest``:
    a fresh clone of the working tree, without ``.venv``, stamps or build output."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout to copy")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
        capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_symlink() or source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name, follow_symlinks=False)
    return dest


def user_env(**extra: str) -> dict[str, str]:
    """A login shell's environment: no active environment, the machine's pip settings."""
    keep = {k: v for k, v in os.environ.items()
            if k.startswith("PIP_") or k in ("HOME", "LANG", "TMPDIR")}  # fmt: skip
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", **keep, **extra}


def run_setup(clone: Path, env: dict[str, str], *args: str,
              user: str | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    command = ["bash", str(clone / "scripts" / "setup.sh"), *args]
    if user is not None:
        assignments = [f"{k}={v}" for k, v in env.items()]
        runuser = shutil.which("runuser") or "runuser"  # /usr/sbin: not on a user's PATH
        command = [runuser, "-u", user, "--", "/usr/bin/env", "-i", *assignments, *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=1500)


def imported_from(python: Path, module: str = "twostream_das") -> Path:
    out = subprocess.run([str(python), "-c", f"import {module}; print({module}.__file__)"],
                         env=user_env(), capture_output=True, text=True, check=True)  # fmt: skip
    return Path(out.stdout.strip()).resolve()


def outer_site_dirs() -> list[str]:
    """The running interpreter's site-packages folders (torch, numpy, ... live there)."""
    dirs = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    return sorted({d for d in dirs if Path(d).is_dir()})


def test_active_venv_gets_the_package_and_keeps_its_torch(tmp_path):
    clone = checkout_copy(tmp_path / "clone")
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    inner_site = Path(
        subprocess.run([str(env_dir / "bin" / "python"), "-c",
                        "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       capture_output=True, text=True, check=True).stdout.strip()
    )  # fmt: skip
    # The running interpreter's torch and friends, as plain path entries (their own .pth files,
    # such as an editable install of another checkout, are not processed).
    (inner_site / "outer.pth").write_text("\n".join(outer_site_dirs()) + "\n")
    env = user_env(VIRTUAL_ENV=str(env_dir), PATH=f"{env_dir / 'bin'}:/usr/bin:/bin")
    result = run_setup(clone, env, "demo", "--print-python")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str(env_dir / "bin" / "python")
    assert "keeping torch" in result.stderr and "twostream-das --help" in result.stderr
    python = env_dir / "bin" / "python"
    assert (clone / "src") in imported_from(python).parents  # this checkout, editable
    assert Path(imported_from(python, "torch")).parents[1] in map(Path, outer_site_dirs())
    assert not (clone / ".venv").exists()
    version = subprocess.run([str(env_dir / "bin" / "twostream-das"), "--version"],
                             capture_output=True, text=True, check=True)  # fmt: skip
    assert version.stdout.startswith("twostream-das ")
    again = run_setup(clone, env, "demo")  # set up: nothing to install
    assert again.returncode == 0 and "installing" not in again.stderr, again.stderr


def test_a_python_without_venv_gets_one_line_naming_the_package(tmp_path):
    clone = checkout_copy(tmp_path / "clone")
    fake = tmp_path / "python3"  # a Python whose venv/ensurepip are missing, as on Debian
    fake.write_text(
        "#!/bin/sh\n"
        'case "$*" in *ensurepip*|"-m venv"*) echo "No module named ensurepip" >&2; exit 1;; esac\n'
        f'exec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    result = run_setup(clone, user_env(PYTHON=str(fake)), "demo")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    ver = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert len(lines) == 1 and f"apt install python{ver}-venv" in lines[0], lines
    assert not (clone / ".venv").exists()


def test_an_externally_managed_python_is_never_installed_into(tmp_path):
    if not SYSTEM_PYTHON.exists() or not list(Path("/usr/lib").glob("python3*/EXTERNALLY-MANAGED")):
        pytest.skip(f"no externally managed {SYSTEM_PYTHON} here")
    clone = checkout_copy(tmp_path / "clone")
    fake_env = tmp_path / "not-an-env"  # $VIRTUAL_ENV pointing at the system Python
    (fake_env / "bin").mkdir(parents=True)
    (fake_env / "bin" / "python").symlink_to(SYSTEM_PYTHON)
    result = run_setup(clone, user_env(VIRTUAL_ENV=str(fake_env)), "demo")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "externally managed" in lines[0] and "PEP 668" in lines[0], lines


def system_python_or_skip() -> None:
    managed = list(Path("/usr/lib").glob("python3*/EXTERNALLY-MANAGED"))
    if not SYSTEM_PYTHON.exists() or not managed:
        pytest.skip(f"no {SYSTEM_PYTHON} with an EXTERNALLY-MANAGED marker here")
    ok = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sys, venv, ensurepip; "
                         "sys.exit(sys.version_info < (3, 10))"])  # fmt: skip
    if ok.returncode != 0:
        pytest.skip(f"{SYSTEM_PYTHON} is older than 3.10 or has no venv module")


def check_own_venv(clone: Path, result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    python = clone / ".venv" / "bin" / "python"
    assert (clone / "src") in imported_from(python).parents
    assert f"{clone / '.venv' / 'bin' / 'twostream-das'} --help" in result.stderr
    assert f"source {clone / '.venv' / 'bin' / 'activate'}" in result.stderr
    # nothing went into the system Python, and it is still externally managed
    assert subprocess.run([str(SYSTEM_PYTHON), "-c", "import twostream_das"], env=user_env(),
                          cwd="/", capture_output=True).returncode != 0  # fmt: skip
    assert list(Path("/usr/lib").glob("python3*/EXTERNALLY-MANAGED"))


@pytest.mark.slow
def test_stock_system_python_gets_a_venv_in_the_checkout(tmp_path):
    system_python_or_skip()
    clone = checkout_copy(tmp_path / "clone")
    result = run_setup(clone, user_env(PATH="/usr/bin:/bin", PYTHON=str(SYSTEM_PYTHON)), "demo")
    check_own_venv(clone, result)


@pytest.mark.slow
def test_a_non_root_user_gets_a_venv_in_their_checkout(tmp_path):
    system_python_or_skip()
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("runuser"):
        pytest.skip("making a user needs root, useradd and runuser")
    name = "tsd-setup-test"
    try:
        pwd.getpwnam(name)
        made = False
    except KeyError:
        subprocess.run(["useradd", "--create-home", name], check=True)
        made = True
    home = Path(pwd.getpwnam(name).pw_dir)
    work = home / f"setup-test-{os.getpid()}"
    try:
        clone = checkout_copy(work / "clone")
        env = user_env(PATH="/usr/bin:/bin", HOME=str(home), PYTHON=str(SYSTEM_PYTHON))
        own_config = Path(os.environ.get("HOME", "/root")) / ".config" / "pip" / "pip.conf"
        if own_config.is_file() and "PIP_CONFIG_FILE" not in env:  # the machine's pip settings
            shutil.copy(own_config, work / "pip.conf")
            env["PIP_CONFIG_FILE"] = str(work / "pip.conf")
        subprocess.run(["chown", "-R", f"{name}:", str(work)], check=True)
        result = run_setup(clone, env, "demo", user=name)
        check_own_venv(clone, result)
        owner = (clone / ".venv" / "bin" / "python").lstat().st_uid
        assert owner == pwd.getpwnam(name).pw_uid
    finally:
        if made:
            subprocess.run(["userdel", "--remove", name], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
