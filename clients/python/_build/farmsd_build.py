"""farmsd_build -- a PEP 517 build backend in the standard library only.

It builds the one-module wheel (and sdist) of the farmsd client, so that
`pip install ./clients/python` needs no network: pip installs a backend's
`requires` (none here) before building. It reads name, version, summary,
Python requirement and console scripts from pyproject.toml (tomllib on
Python >= 3.11, else a tiny reader of the few keys used here).
"""
import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = "farmsd_client.py"


def _project():
    text = open(os.path.join(HERE, "pyproject.toml"), encoding="utf-8").read()
    try:
        import tomllib
        data = tomllib.loads(text)
        return data["project"]
    except ImportError:
        pass
    proj, section = {"scripts": {}}, None
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^\[(.+)\]$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r'^([\w-]+)\s*=\s*"(.*)"$', line)
        if m and section == "project":
            proj[m.group(1)] = m.group(2)
        elif m and section == "project.scripts":
            proj["scripts"][m.group(1)] = m.group(2)
    return proj


def _dist(proj):
    return proj["name"].replace("-", "_"), proj["version"]


def _metadata(proj):
    readme = open(os.path.join(HERE, "README.md"), encoding="utf-8").read()
    return ("Metadata-Version: 2.1\n"
            f"Name: {proj['name']}\nVersion: {proj['version']}\n"
            f"Summary: {proj.get('description', '')}\n"
            f"Requires-Python: {proj.get('requires-python', '>=3.8')}\n"
            "License: MIT\nDescription-Content-Type: text/markdown\n\n" + readme)


def _files(proj):
    name, version = _dist(proj)
    info = f"{name}-{version}.dist-info"
    scripts = "".join(f"{k} = {v}\n" for k, v in proj.get("scripts", {}).items())
    return info, {
        MODULE: open(os.path.join(HERE, MODULE), "rb").read(),
        f"{info}/METADATA": _metadata(proj).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: farmsd_build\n"
                         b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[console_scripts]\n{scripts}".encode(),
        f"{info}/top_level.txt": b"farmsd_client\n",
    }


def _record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}\n"


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    proj = _project()
    info, files = _files(proj)
    os.makedirs(os.path.join(metadata_directory, info), exist_ok=True)
    for path, data in files.items():
        if path.startswith(info + "/"):
            with open(os.path.join(metadata_directory, path), "wb") as f:
                f.write(data)
    return info


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    proj = _project()
    name, version = _dist(proj)
    info, files = _files(proj)
    wheel = f"{name}-{version}-py3-none-any.whl"
    record = "".join(_record_line(p, d) for p, d in files.items()) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in files.items():
            z.writestr(path, data)
        z.writestr(f"{info}/RECORD", record)
    return wheel


def build_sdist(sdist_directory, config_settings=None):
    proj = _project()
    name, version = _dist(proj)
    base = f"{name}-{version}"
    out = os.path.join(sdist_directory, base + ".tar.gz")
    with tarfile.open(out, "w:gz") as t:
        for rel in ("pyproject.toml", "README.md", MODULE, "_build/farmsd_build.py"):
            t.add(os.path.join(HERE, rel), arcname=f"{base}/{rel}")
        pkg = _metadata(proj).encode()
        ti = tarfile.TarInfo(f"{base}/PKG-INFO")
        ti.size = len(pkg)
        t.addfile(ti, io.BytesIO(pkg))
    return base + ".tar.gz"
