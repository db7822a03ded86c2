"""Installs what the book needs on this machine, where it can.

System packages come from apt-get when we are root on Debian or Ubuntu;
otherwise the exact command is printed and the set-up carries on with what
this machine can run. The load generator and the services are built into
the project's own folders.
"""

import concurrent.futures
import os
import shutil
import subprocess
from pathlib import Path

from book import paths, toolchain

# tool -> the Debian packages that provide it
DEBIAN_PACKAGES = {
    "php-fpm": ["php-fpm", "php-cli"],
    "nginx": ["nginx-light"],
    "redis-server": ["redis-server"],
    "chromium": ["chromium"],
    "java": ["openjdk-17-jdk-headless"],
    "javac": ["openjdk-17-jdk-headless"],
    "go": ["golang-go"],
    "node": ["nodejs", "npm"],
}
APT_TIMEOUT_S = 1200


# PHP extensions the legacy API needs, and the Debian package of each
PHP_EXTENSIONS = {"mbstring": "php-mbstring"}


def missing_php_extensions() -> list[str]:
    """Debian packages for PHP extensions php-fpm does not load."""
    php_fpm = toolchain.find("php-fpm")
    if php_fpm is None:
        return list(PHP_EXTENSIONS.values())
    done = subprocess.run([php_fpm, "-m"], capture_output=True, text=True, timeout=20)
    loaded = {line.strip().lower() for line in done.stdout.splitlines()}
    return [pkg for ext, pkg in PHP_EXTENSIONS.items() if ext not in loaded]


def missing_packages() -> list[str]:
    wanted = []
    for tool, packages in DEBIAN_PACKAGES.items():
        if toolchain.find(tool) is None:
            wanted += [p for p in packages if p not in wanted]
    wanted += [p for p in missing_php_extensions() if p not in wanted]
    return wanted


def install_system_packages() -> list[str]:
    """apt-get install what is missing; returns what is still missing."""
    packages = missing_packages()
    if not packages:
        print("system packages: all present")
        return []
    command = f"apt-get install -y {' '.join(packages)}"
    can_apt = os.geteuid() == 0 and shutil.which("apt-get")
    if not can_apt:
        print(f"system packages missing: run as root: apt-get update && {command}")
        return packages
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"system packages: {command}")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq"]):
        if argv[1] == "install":
            argv = argv + packages
        done = subprocess.run(argv, env=env, timeout=APT_TIMEOUT_S)
        if done.returncode != 0:
            print(f"WARNING: `{' '.join(argv)}` failed; carrying on without them")
            toolchain.version.cache_clear()
            return missing_packages()
    toolchain.version.cache_clear()
    return missing_packages()


def copy_plotly_js() -> Path:
    """plotly.js into the book's static files, from the installed package."""
    import plotly

    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    target = paths.ROOT / "_static" / "plotly.min.js"
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        shutil.copyfile(source, target)
    return target


def build_everything() -> list[str]:
    """Build the load generator and every chapter's services; returns the
    failures as sentences.

    oha builds on a second thread: the services' release builds end in
    fat-LTO links that use one core each, and oha's build fills the other.
    """
    from book import chapters

    failures = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        log = paths.RUN_DIR / "build-logs" / "oha.log"
        print(f"oha: building on a second thread if needed (log: {log})")
        oha = pool.submit(toolchain.build_oha, echo=False)
        for name, build in chapters.BUILDS.items():
            failures += _report(name, build)
        failures += _report("load generator", lambda: [oha.result()])
    return failures


def _report(name: str, build) -> list[str]:
    try:
        for built in build():
            print(built.describe())
    except (toolchain.ToolMissing, toolchain.BuildFailed) as error:
        print(f"WARNING: {name}: {error}")
        return [f"{name}: {error}"]
    return []


def setup() -> int:
    still_missing = install_system_packages()
    copy_plotly_js()
    failures = build_everything()
    if still_missing:
        print(
            "Chapters that need " + ", ".join(still_missing) + " will show the "
            "reference measurements instead of live ones."
        )
    return 1 if failures and os.environ.get("CI") else 0
