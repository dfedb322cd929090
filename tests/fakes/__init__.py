"""tests/fakes: the stand-ins ccr's integration tests run against.

testenv.py is the one place that starts servers and hands out ports
(free_port, start_server, serve_http; tests/conftest.py's `servers`
fixture stops what a test started).  The rest are the servers and
programs themselves: fake_anthropic.py (the Messages API), fake_gcp.py with
fake_gcp_admin.py and discovery.py (Google Cloud, checked against Google's
discovery documents) and its client gcp_client.py, git_servers.py (git over
HTTPS and SSH, GitHub's pull-request API), fake_claude.py and
hostile_claude.py (stand-ins for the Claude Code CLI), mcp_echo.py,
local_seal.py, rootfs_run.py.
"""
