"""`dl4mic fiji update-site`: the folder layout and db.xml.gz that Fiji's updater reads, updated in place."""

import gzip
import hashlib
import json
from xml.etree import ElementTree

from dl4mic.fiji.install import CONFIG_NAME, SPECS_NAME, fiji_files, install_scripts, write_update_site
from dl4mic.fiji.jylib import JYLIB_DIR

from helpers import cli


def records(site):
    root = ElementTree.fromstring(gzip.decompress((site / "db.xml.gz").read_bytes()))
    return {p.get("filename"): p for p in root.iter("plugin")}


def test_update_site_lists_every_file_with_the_updaters_checksum(tmp_path):
    site = tmp_path / "site"
    assert cli("fiji", "update-site", site) == 0
    plugins = records(site)
    files = fiji_files()
    assert set(plugins) == set(files)
    assert {"scripts/Plugins/dl4mic/Train.py", "jars/Lib/dl4mic_run.py", f"jars/Lib/{CONFIG_NAME}"} <= set(plugins)
    for path, plugin in plugins.items():
        version = plugin.find("version")
        stored = site / f"{path}-{version.get('timestamp')}"
        assert stored.read_bytes() == files[path]
        # Fiji's updater: SHA-1 over the path (ASCII) then the content, for files that are not jars
        assert version.get("checksum") == hashlib.sha1(path.encode() + stored.read_bytes()).hexdigest()
        assert int(version.get("filesize")) == len(files[path])
    # a site is shared by a lab: it records the `dl4mic` on each user's PATH, not this machine's Python
    assert json.loads(files[f"jars/Lib/{CONFIG_NAME}"])["command"] == ["dl4mic"]


def test_update_site_keeps_unchanged_files_and_versions_changed_ones(tmp_path, monkeypatch):
    site = tmp_path / "site"
    write_update_site(site, timestamp="20260101000000")
    import dl4mic.fiji.install as install

    real = install.fiji_files

    def changed(python=None):
        files = real(python)
        files["scripts/Plugins/dl4mic/QC.py"] += b"# fixed\n"
        del files["jars/Lib/dl4mic_boxes.py"]
        return files

    monkeypatch.setattr(install, "fiji_files", changed)
    assert write_update_site(site, timestamp="20260202000000") == ["scripts/Plugins/dl4mic/QC.py"]
    plugins = records(site)
    qc = plugins["scripts/Plugins/dl4mic/QC.py"]
    assert qc.find("version").get("timestamp") == "20260202000000"
    assert [p.get("timestamp") for p in qc.iter("previous-version")] == ["20260101000000"]
    assert plugins["scripts/Plugins/dl4mic/Train.py"].find("version").get("timestamp") == "20260101000000"
    gone = plugins["jars/Lib/dl4mic_boxes.py"]
    assert gone.find("version") is None
    assert [p.get("timestamp-obsolete") for p in gone.iter("previous-version")] == ["20260202000000"]
    assert (site / "scripts/Plugins/dl4mic/QC.py-20260101000000").is_file()  # old versions stay downloadable


def test_command_only_records_the_users_dl4mic_after_an_update_site(tmp_path):
    fiji = tmp_path / "Fiji.app"
    (fiji / "jars").mkdir(parents=True)
    written = install_scripts(fiji, python="/opt/env/bin/python", command_only=True)
    assert written == [fiji / "jars" / "Lib" / CONFIG_NAME]
    assert json.loads(written[0].read_text())["command"] == ["/opt/env/bin/python", "-m", "dl4mic"]
    assert not (fiji / "scripts").exists()


def test_the_names_of_the_recorded_files_match_the_scripts_side():
    source = (JYLIB_DIR / "dl4mic_run.py").read_text()
    assert f'CONFIG_NAME = "{CONFIG_NAME}"' in source and f'SPECS_NAME = "{SPECS_NAME}"' in source
