"""The settings table (src/settings): one table of every environment variable.

It prints `ccr serve --help`, `ccr job --help` and README.md's configuration
table; a malformed number stops a command at start-up with exit 2 and one
line naming the variable; a secret's value is never printed.
"""
import os
import re
import subprocess

import pytest

BEGIN = "<!-- settings:begin"
END = "<!-- settings:end -->"
SECRET = "sk-ant-settings-canary-4b1d"


def run(ccr_bin, *args, **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("CCR_")}
    full.update(env)
    return subprocess.run([str(ccr_bin), *args], env=full, capture_output=True, text=True, timeout=30)


def test_readme_table_is_the_printed_table(ccr_bin, repo_root):
    readme = (repo_root / "README.md").read_text()
    assert readme.count(BEGIN) == 1 and readme.count(END) == 1, "README.md needs one pair of settings markers"
    start = readme.index("\n", readme.index(BEGIN)) + 1
    in_readme = readme[start:readme.index(END)]
    p = run(ccr_bin, "help", "settings", "--markdown")
    assert p.returncode == 0, p.stderr
    assert in_readme == p.stdout, ("README.md's configuration table differs from the settings table: "
                                   "paste `ccr help settings --markdown` between the markers")


def test_every_variable_the_code_names_is_in_the_table(ccr_bin):
    table = run(ccr_bin, "help", "settings", "--markdown").stdout
    names = set(re.findall(r"^\| `([A-Za-z_][A-Za-z0-9_]*)` \|", table, re.M))
    assert len(names) > 80
    for name in ("PORT", "CCR_BIND", "CCR_MAX_CONCURRENT_TASKS", "CCR_SANDBOX", "CLOUDRUN_CALLBACK_SECRET",
                 "CCR_EGRESS_ALLOW", "GCS_LOGS_BUCKET", "CCR_RETRY_BASE_MS"):
        assert name in names, name


@pytest.mark.parametrize("cmd,names", [
    ("serve", ("PORT", "CCR_BIND", "CCR_MAX_CONNECTIONS", "CCR_SSE_BACKLOG", "LOG_LEVEL")),
    ("job", ("TASK_ID", "CCR_IDLE_TIMEOUT_S", "CCR_EGRESS_ALLOW", "CCR_SANDBOX_RO_PATHS", "CCR_LOG_FLUSH_MS")),
])
def test_help_lists_the_commands_settings(ccr_bin, cmd, names):
    p = run(ccr_bin, cmd, "--help")
    assert p.returncode == 0, p.stderr
    listed = set(re.findall(r"^  ([A-Za-z_][A-Za-z0-9_]*)(?: |$)", p.stdout, re.M))
    for name in names:
        assert name in listed, (cmd, name)
    assert all(len(line) <= 80 for line in p.stdout.splitlines() if line.startswith("   "))


@pytest.mark.parametrize("cmd,name,value,expect", [
    ("serve", "CCR_MAX_CONCURRENT_TASKS", "abc", "an integer from 1 to 1024"),
    ("serve", "PORT", "99999", "an integer from 0 to 65535"),
    ("serve", "CCR_HTTP_IDLE_TIMEOUT_MS", "-5", "a number of milliseconds from 1 to 3600000"),
    ("serve", "CCR_KILL_GRACE_MS", "0", "a number of milliseconds from 1 to 600000"),   # a job setting, inherited
    ("job", "CCR_IDLE_TIMEOUT_S", "10m", "a number of seconds from 1 to 86400"),
    ("gcp", "CCR_RETRY_BASE_MS", "fast", "a number of milliseconds from 1 to 60000"),
])
def test_malformed_number_is_exit_2_and_one_line(ccr_bin, cmd, name, value, expect):
    p = run(ccr_bin, cmd, **{name: value})
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and f"{name}={value}" in lines[0] and expect in lines[0], p.stderr


def test_well_formed_values_pass(ccr_bin):
    p = run(ccr_bin, "job", CCR_IDLE_TIMEOUT_S="30")
    assert p.returncode == 1 and "TASK_ID" in p.stderr, p.stderr      # past the settings: the missing task


def test_secret_never_printed(ccr_bin):
    secrets = dict(CCR_API_KEYS=SECRET, CLOUDRUN_CALLBACK_SECRET=SECRET, ANTHROPIC_API_KEY=SECRET,
                   CLAUDE_CODE_OAUTH_TOKEN=SECRET, CCR_GIT_TOKEN=SECRET, CCR_TESTS_TOKEN=SECRET)
    for args in (("serve", "--help"), ("job", "--help"), ("help", "settings"), ("help", "settings", "--markdown")):
        p = run(ccr_bin, *args, **secrets)
        assert p.returncode == 0 and SECRET not in p.stdout + p.stderr, args
    # a malformed setting next to the secrets: the error names it, and nothing else
    p = run(ccr_bin, "serve", PORT="x", **secrets)
    assert p.returncode == 2 and SECRET not in p.stdout + p.stderr and "PORT=x" in p.stderr
