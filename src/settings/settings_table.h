/*
 * settings_table.h: every environment variable ccr reads, once (an
 * X-macro list; settings.h expands it into the ids and the table).
 *
 *   SETTING(NAME, TYPE, "default as shown", default, min, max, COMMANDS, "meaning")
 *
 * TYPE is a settings_type without its SETT_ prefix.  INT and DURATION
 * values are checked at start-up against [min, max] by every command in
 * COMMANDS (a malformed one stops it with exit 2); the numeric default is
 * what settings_int() returns when the variable is unset (0 with a
 * "default as shown" of "per mode": the caller picks).  Other types are
 * parsed where they are used, as they always were.  SECRET values are
 * never copied into the table's snapshot (util/secenv.h takes them).
 * The order is the order of `--help` and of README.md's table.
 */

/* ---- serve: the HTTP server ---------------------------------------------- */
SETTING(PORT, INT, "8080", 8080, 0, 65535, SC_SERVE,
	"the port serve listens on; 0 picks a free port (logged in the \"listening\" line)")
SETTING(CCR_BIND, STRING, "127.0.0.1 local, 0.0.0.0 cloud", 0, 0, 0, SC_SERVE,
	"the address serve listens on (\"::\" or \"0.0.0.0\": every interface)")
SETTING(CCR_API_KEYS, SECRET, "none", 0, 0, 0, SC_SERVE | SC_JOB,
	"comma-separated API keys, or @file; task endpoints then need Authorization: Bearer <key> (serve and job take it out of the environment at start-up)")
SETTING(CCR_MAX_CONNECTIONS, INT, "1024", 1024, 1, 100000, SC_SERVE,
	"open connections before new ones get 503 (a plain GET /health is still answered ok)")
SETTING(CCR_MAX_CONNECTIONS_PER_CLIENT, INT, "3/4 of CCR_MAX_CONNECTIONS", 0, 0, 100000, SC_SERVE,
	"open connections from one client address before 503 (0: 3/4 of CCR_MAX_CONNECTIONS)")
SETTING(CCR_SSE_BACKLOG, INT, "4096", 4096, 256, 1000000, SC_SERVE,
	"recent lines kept per followed task; a stream that falls further behind gets event: reconnect")
SETTING(CCR_HTTP_READ_TIMEOUT_MS, DURATION, "10000 headers, 30000 body", 0, 1, 3600000, SC_SERVE,
	"deadline for a request's headers, and for its body")
SETTING(CCR_HTTP_IDLE_TIMEOUT_MS, DURATION, "65000", 65000, 1, 3600000, SC_SERVE,
	"keep-alive idle time of a connection")
SETTING(CCR_HTTP_WRITE_TIMEOUT_MS, DURATION, "30000", 30000, 1, 3600000, SC_SERVE,
	"time without write progress before a client counts as gone")
SETTING(CCR_DRAIN_TIMEOUT_MS, DURATION, "8000", 8000, 0, 3600000, SC_SERVE,
	"how long SIGTERM/SIGINT waits for open requests before exiting")
SETTING(CCR_CLI_CHECK_TIMEOUT_MS, DURATION, "5000", 5000, 1, 600000, SC_SERVE,
	"limit for `claude --version` in /health?verbose=true")
SETTING(CCR_RECONCILE_INTERVAL_S, DURATION, "10", 10, 1, 3600, SC_SERVE,
	"how often every active task is checked against its execution; a task whose job is gone is finalised as failed / lost")
SETTING(CCR_MAX_CONCURRENT_TASKS, INT, "4", 4, 1, 1024, SC_SERVE,
	"local mode: tasks beyond this wait, reported as queued")
SETTING(CCR_CANCEL_GRACE_MS, DURATION, "10000", 10000, 1, 600000, SC_SERVE,
	"local mode: after a cancel, how long a job has to stop before it is killed")
SETTING(CCR_KEEP_JOB_LOGS, BOOL, "off", 0, 0, 0, SC_SERVE,
	"local mode: 1, true or on keeps every job's log (<data dir>/.run/<task>.log), not only a failed job's; either kind goes after a week")
SETTING(CCR_SYSTEM_PROMPT_SECRET, STRING, "none", 0, 0, 0, SC_SERVE,
	"a Secret Manager secret whose value is the default systemPrompt of every task")
SETTING(CCR_SYSTEM_PROMPT_REFRESH_S, DURATION, "60", 60, 1, 86400, SC_SERVE,
	"how often CCR_SYSTEM_PROMPT_SECRET is read again")
SETTING(LOG_LEVEL, STRING, "info", 0, 0, 0, SC_SERVE | SC_JOB,
	"debug, info, warn or error: the lowest level logged as JSON lines (Cloud Logging fields; serve on stdout, the job on stderr); another value means info")

/* ---- backends: local or cloud -------------------------------------------- */
SETTING(CCR_DATA_DIR, PATH, "./ccr-data", 0, 0, 0, SC_SERVE | SC_JOB,
	"local mode: the object store (same layout as the bucket)")
SETTING(CCR_LOCAL_KEY_FILE, PATH, "CCR_DATA_DIR/ccr.key", 0, 0, 0, SC_SERVE | SC_JOB,
	"local mode: the key that seals payloads (created when missing)")
SETTING(GCS_LOGS_BUCKET, STRING, "none", 0, 0, 0, SC_SERVE | SC_JOB | SC_DEPLOY,
	"the bucket of task state and logs; set, it turns cloud mode on")
SETTING(PROJECT_ID, STRING, "from the credentials", 0, 0, 0, SC_SERVE | SC_JOB | SC_DEPLOY | SC_GCP,
	"the Google Cloud project (then GCS_PROJECT_ID, GOOGLE_CLOUD_PROJECT, GCLOUD_PROJECT, the credentials, the metadata server)")
SETTING(GCS_PROJECT_ID, STRING, "none", 0, 0, 0, SC_SERVE | SC_JOB | SC_DEPLOY | SC_GCP,
	"the project, when PROJECT_ID is unset (the seed's name)")
SETTING(GOOGLE_CLOUD_PROJECT, STRING, "none", 0, 0, 0, SC_SERVE | SC_JOB | SC_GCP,
	"the project, when the two above are unset; also the project of trace names in access logs")
SETTING(GCLOUD_PROJECT, STRING, "none", 0, 0, 0, SC_SERVE | SC_JOB | SC_GCP,
	"the project, when the three above are unset")
SETTING(GOOGLE_CLOUD_QUOTA_PROJECT, STRING, "the credentials'", 0, 0, 0, SC_SERVE | SC_JOB | SC_GCP | SC_DEPLOY,
	"with authorized-user credentials: the project billed for API calls")
SETTING(REGION, STRING, "europe-west3", 0, 0, 0, SC_SERVE | SC_JOB | SC_DEPLOY | SC_GCP,
	"the region of the Cloud Run job, and the KMS key ring's location (as in the original's code and setup script)")
SETTING(CCR_KMS_LOCATION, STRING, "REGION", 0, 0, 0, SC_SERVE | SC_JOB | SC_DEPLOY | SC_GCP,
	"ccr only: the KMS key ring's location when it is not REGION (logged at start-up)")
SETTING(KMS_LOCATION, STRING, "ignored", 0, 0, 0, SC_SERVE,
	"the seed's documented but unread variable: ignored; when it is set and differs, serve logs a warning at start-up")
SETTING(KMS_KEY_RING, STRING, "cloudrun-claude-code-keys", 0, 0, 0, SC_SERVE | SC_JOB | SC_DEPLOY | SC_GCP,
	"the Cloud KMS key ring that seals payloads")
SETTING(KMS_KEY_NAME, STRING, "async-task-payload-key", 0, 0, 0, SC_SERVE | SC_JOB | SC_DEPLOY | SC_GCP,
	"the Cloud KMS key that seals payloads")
SETTING(CLOUDRUN_JOB_NAME, STRING, "claude-code-async-worker", 0, 0, 0, SC_SERVE | SC_DEPLOY,
	"cloud mode: the Cloud Run job that runs tasks")
SETTING(GOOGLE_APPLICATION_CREDENTIALS, PATH, "ADC order", 0, 0, 0, SC_SERVE | SC_JOB | SC_DEPLOY | SC_GCP,
	"service-account or authorized-user JSON; else gcloud's ADC file; else the metadata server")
SETTING(CLOUDSDK_CONFIG, PATH, "$HOME/.config/gcloud", 0, 0, 0, SC_SERVE | SC_JOB | SC_DEPLOY | SC_GCP,
	"where gcloud's application_default_credentials.json is looked for")
SETTING(GCE_METADATA_HOST, STRING, "169.254.169.254", 0, 0, 0, SC_SERVE | SC_JOB | SC_DEPLOY | SC_GCP,
	"the metadata server (tests, air-gapped setups)")
SETTING(STORAGE_EMULATOR_HOST, STRING, "Google's", 0, 0, 0, SC_SERVE | SC_JOB | SC_DEPLOY | SC_GCP,
	"Cloud Storage endpoint override (a bare host means http://)")
SETTING(CCR_KMS_ENDPOINT, STRING, "Google's", 0, 0, 0, SC_SERVE | SC_JOB | SC_DEPLOY | SC_GCP,
	"Cloud KMS endpoint override (an http:// or https:// URL)")
SETTING(CCR_RUN_ENDPOINT, STRING, "Google's", 0, 0, 0, SC_SERVE | SC_JOB | SC_DEPLOY | SC_GCP,
	"Cloud Run endpoint override")
SETTING(CCR_SECRETMANAGER_ENDPOINT, STRING, "Google's", 0, 0, 0, SC_SERVE | SC_DEPLOY | SC_GCP,
	"Secret Manager endpoint override")
SETTING(CCR_IAM_ENDPOINT, STRING, "Google's", 0, 0, 0, SC_DEPLOY,
	"IAM endpoint override")
SETTING(CCR_ARTIFACTREGISTRY_ENDPOINT, STRING, "Google's", 0, 0, 0, SC_DEPLOY,
	"Artifact Registry endpoint override")
SETTING(CCR_PUSH_CHUNK_BYTES, NUMBER, "16777216", 0, 0, 0, SC_DEPLOY,
	"the image push: blobs larger than this go up in chunks of this size (below 1024 or not a number: the default)")
SETTING(CCR_RETRY_BASE_MS, DURATION, "1000", 1000, 1, 60000, SC_ANY_HTTP,
	"the first delay of every HTTP client's retry schedule (later delays scale with it)")
SETTING(SSL_CERT_FILE, PATH, "compiled-in roots", 0, 0, 0, SC_ANY_HTTP,
	"a PEM bundle of CA roots for every TLS client")
SETTING(SSL_CERT_DIR, PATH, "compiled-in roots", 0, 0, 0, SC_ANY_HTTP,
	"a directory of CA roots for every TLS client")

/* ---- webhooks ------------------------------------------------------------ */
SETTING(CLOUDRUN_CALLBACK_SECRET, SECRET, "none", 0, 0, 0, SC_SERVE | SC_JOB,
	"webhook HMAC secret (whsec_... base64 for Standard Webhooks); without it the metadata says the webhook was not sent (taken out of the environment at start-up)")
SETTING(CCR_WEBHOOK_DEADLINE_S, DURATION, "600", 600, 1, 86400, SC_SERVE | SC_JOB,
	"how long a webhook is retried (job, and serve for tasks it finalises)")
SETTING(CCR_ALLOW_PRIVATE_CALLBACKS, BOOL, "off", 0, 0, 0, SC_SERVE | SC_JOB,
	"1 allows callback URLs (and webhook redirect targets) on loopback/private addresses (local development)")
SETTING(CCR_CALLBACK_ALLOW_HOSTS, LIST, "none", 0, 0, 0, SC_SERVE | SC_JOB,
	"comma-separated host names (as written in the URL, case-insensitive) allowed on private addresses; every other host still gets the deny-list")

/* ---- job: the task runner ------------------------------------------------ */
SETTING(TASK_ID, STRING, "set by serve", 0, 0, 0, SC_JOB,
	"the task the job runs (required)")
SETTING(ENCRYPTED_PAYLOAD_PATH, STRING, "set by serve", 0, 0, 0, SC_JOB,
	"the object holding the task's sealed payload (required)")
SETTING(CLOUD_RUN_EXECUTION, STRING, "set by Cloud Run", 0, 0, 0, SC_JOB,
	"the execution's id, stored with the task")
SETTING(CLOUD_RUN_JOB, STRING, "set by Cloud Run", 0, 0, 0, SC_JOB,
	"the job's name, for the execution's full resource name")
SETTING(CLOUD_RUN_TASK_ATTEMPT, STRING, "0, set by Cloud Run", 0, 0, 0, SC_JOB,
	"the attempt number; anything but a number counts as a retry")
SETTING(CLAUDE_BIN, PATH, "claude", 0, 0, 0, SC_SERVE | SC_JOB,
	"the Claude Code CLI")
SETTING(CLAUDE_CONFIG_DIR, PATH, "per task", 0, 0, 0, SC_JOB,
	"the CLI's settings and session transcripts: by default <workspace>/.claude-config, wiped with the workspace; set it to share one directory between tasks")
SETTING(ANTHROPIC_API_KEY, SECRET, "none", 0, 0, 0, SC_SERVE,
	"serve: counts as a configured credential in /health (tasks bring their own)")
SETTING(CLAUDE_CODE_OAUTH_TOKEN, SECRET, "none", 0, 0, 0, SC_SERVE,
	"serve: counts as a configured credential in /health (tasks bring their own)")
SETTING(CCR_ANTHROPIC_UPSTREAM, STRING, "https://api.anthropic.com", 0, 0, 0, SC_JOB,
	"where the job's token proxy sends the real key")
SETTING(CCR_WORKSPACE_ROOT, PATH, "/tmp/workspaces", 0, 0, 0, SC_SERVE | SC_JOB,
	"job workspaces (0700, wiped after each task)")
SETTING(CCR_MAX_BUDGET_USD, NUMBER, "none", 0, 0, 0, SC_JOB,
	"the operator's spend cap per task in US dollars; a request's maxBudgetUsd can only lower it; a value that is not a positive number fails the task")
SETTING(CCR_INBOX_POLL_MS, DURATION, "100 local, 1000 cloud", 0, 10, 60000, SC_JOB,
	"how often a task that takes follow-up messages (idleAfterResultSeconds) reads its inbox")
SETTING(CCR_IDLE_TIMEOUT_S, DURATION, "900", 900, 1, 86400, SC_JOB,
	"the idle watchdog (the request's idleTimeoutMinutes overrides it)")
SETTING(CCR_RESULT_GRACE_S, DURATION, "60", 60, 1, 3600, SC_JOB,
	"how long the CLI may run on after its result")
SETTING(CCR_KILL_GRACE_MS, DURATION, "5000", 5000, 1, 600000, SC_JOB,
	"between SIGTERM and SIGKILL of the CLI")
SETTING(CCR_STORAGE_GIVE_UP_S, DURATION, "180", 180, 5, 3600, SC_JOB,
	"storage failing this long without a break ends the task (storage_failed) and the job (exit 1)")
SETTING(CCR_STOP_BUDGET_MS, DURATION, "9000", 9000, 1000, 3600000, SC_JOB,
	"after SIGTERM the job is gone within this, whatever it was doing (Cloud Run allows 10 s)")
SETTING(CCR_LOG_FLUSH_MS, DURATION, "20 local, 250 cloud", 0, 1, 60000, SC_JOB,
	"a complete output line is stored at once when the last chunk is at least this old; a busy task writes at most one chunk per interval")
SETTING(CCR_LOG_FLUSH_DEADLINE_MS, DURATION, "60000", 60000, 100, 3600000, SC_JOB,
	"at the end of a task, how long the last log chunks may take to be stored")
SETTING(CCR_MAX_LINE_BYTES, INT, "4194304", 4194304, 4096, 1073741824, SC_JOB,
	"a longer output line is stored truncated, with a marker and a warning")
SETTING(CCR_PRECMD_TIMEOUT_S, NUMBER, "300", 0, 0, 0, SC_JOB,
	"the default limit of a pre-execution command, in seconds (decimals allowed; not a positive number up to 7 days: the default)")
SETTING(DANGEROUSLY_SKIP_PERMISSIONS, BOOL, "off", 0, 0, 0, SC_JOB,
	"true passes --dangerously-skip-permissions to the CLI, as in the seed")
SETTING(CLAUDE_DEBUG, BOOL, "off", 0, 0, 0, SC_JOB,
	"true passes --debug to the CLI, as in the seed")

/* ---- git ----------------------------------------------------------------- */
SETTING(CCR_GIT_TIMEOUT_SECONDS, NUMBER, "300", 0, 0, 0, SC_JOB | SC_GIT,
	"the limit of one git operation, in seconds (1..86400; checked when git starts)")
SETTING(CCR_SSH_KNOWN_HOSTS, PATH, "none", 0, 0, 0, SC_JOB | SC_GIT,
	"a known_hosts file for SSH host-key checking (ccr's and the agent's)")
SETTING(CCR_SSH_INSECURE, BOOL, "off", 0, 0, 0, SC_JOB | SC_GIT,
	"1 turns SSH host-key checking off")
SETTING(CCR_GITHUB_URL, STRING, "https://github.com", 0, 0, 0, SC_JOB | SC_GIT,
	"the GitHub web URL (GitHub Enterprise, tests)")
SETTING(CCR_GITHUB_API, STRING, "https://api.github.com", 0, 0, 0, SC_JOB | SC_GIT,
	"the GitHub API URL (GitHub Enterprise, tests)")
SETTING(GIT_SSH, STRING, "unset", 0, 0, 0, SC_JOB | SC_GIT,
	"removed when git starts: ccr's own ssh command must win")
SETTING(CCR_GIT_TOKEN, SECRET, "none", 0, 0, 0, SC_GIT,
	"ccr git: the HTTPS token (redacted from output)")
SETTING(CCR_TESTS_TOKEN, SECRET, "none", 0, 0, 0, SC_GIT,
	"ccr git: the tests repository's token (redacted from output)")

/* ---- the agent's sandbox and egress -------------------------------------- */
SETTING(CCR_SANDBOX, STRING, "auto", 0, 0, 0, SC_SERVE | SC_JOB,
	"the agent's sandbox: auto (the best this machine allows, a WARNING on every task when less than namespaces + Landlock), required, landlock or off (checked at start-up)")
SETTING(CCR_SANDBOX_RO_PATHS, LIST, "none", 0, 0, 0, SC_JOB,
	":-separated extra paths shown read-only in the sandbox (never ccr's data directory or $HOME)")
SETTING(CCR_SANDBOX_RW_PATHS, LIST, "none", 0, 0, 0, SC_JOB,
	":-separated extra paths shown read-write in the sandbox (e.g. a shared cache)")
SETTING(CCR_EGRESS_ALLOW, LIST, "none (any public host)", 0, 0, 0, SC_JOB,
	"hosts the agent may reach, comma-separated: github.com, *.npmjs.org (names below it) or an IP; the request's allowedHosts can only narrow it")
SETTING(CCR_EGRESS_ALLOW_PRIVATE, LIST, "none", 0, 0, 0, SC_JOB,
	"comma-separated host:port, ip:port or [ipv6]:port admitted although private; the metadata server is never admitted")
SETTING(CCR_EGRESS_IDLE_S, DURATION, "600", 600, 1, 86400, SC_JOB,
	"an egress connection on which nothing moved for this long is closed")
SETTING(HTTPS_PROXY, STRING, "set by the job", 0, 0, 0, SC_CONNECT,
	"ccr connect: the egress proxy, http://127.0.0.1:PORT (then https_proxy)")
SETTING(https_proxy, STRING, "set by the job", 0, 0, 0, SC_CONNECT,
	"ccr connect: the egress proxy when HTTPS_PROXY is unset")
SETTING(PLAYWRIGHT_BROWSERS_PATH, PATH, "/opt/ms-playwright", 0, 0, 0, SC_JOB,
	"where the newest chromium-* build for the Playwright MCP server is looked for")

/* ---- the system ---------------------------------------------------------- */
SETTING(HOME, PATH, "/root", 0, 0, 0, SC_JOB | SC_GCP | SC_SERVE | SC_DEPLOY,
	"the agent's home (outside the sandbox); gcloud's ADC file is under it")
SETTING(PATH, LIST, "/usr/local/bin:/usr/bin:/bin", 0, 0, 0, SC_JOB,
	"the agent's PATH")
SETTING(TMPDIR, PATH, "/tmp", 0, 0, 0, SC_ANY_HTTP | SC_GIT,
	"temporary files (the CA bundle's copy, ccr git's workspace, the sandbox probe)")

/* ---- internal: read by no command, not documented ------------------------ */
SETTING(CCR_SELFTEST_ENDPOINT, STRING, "none", 0, 0, 0, 0,
	"the endpoint override that the selftest gcp/endpoints sets and reads")
