-- Privacy requests (issue 11): one row per data-subject request, export or
-- delete, with its legal due date (GDPR Art. 12(3): one month), what the
-- worker did (times, artifact, sizes, rows per table, receipt, error) and
-- when the export expires. The row and its queue job are created in one
-- transaction by apexops.request_privacy(), which the CLI and the
-- platform's API server both call.
--
-- Open requests are unique per (kind, tenant, user, format): filing the
-- same request again while it is queued or running returns the open one
-- instead of queueing a second (an impatient user pressing the button
-- twice gets one export). A finished request does not block a new one.
CREATE TABLE IF NOT EXISTS apexops.privacy_requests (
	id bigserial PRIMARY KEY,
	kind text NOT NULL CHECK (kind IN ('export', 'delete')),
	tenant_id uuid NOT NULL,
	user_id uuid NOT NULL,
	format text CHECK (format IN ('jsonl', 'csv')),
	status text NOT NULL DEFAULT 'queued'
		CHECK (status IN ('queued', 'running', 'completed', 'failed',
				  'expired')),
	requested_at timestamptz NOT NULL DEFAULT now(),
	due_at timestamptz NOT NULL,
	started_at timestamptz,
	finished_at timestamptz,
	-- the queue job and the attempt that owns the request: a stale
	-- attempt (lease lapsed, job claimed again) cannot complete it
	job_id bigint,
	attempt integer NOT NULL DEFAULT 0,
	provider text CHECK (provider IN ('local', 's3', 'gcs')),
	location text,
	size_bytes bigint,
	sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
	rows_per_table jsonb,
	expires_at timestamptz,
	expired_at timestamptz,
	receipt jsonb,
	error text,
	CHECK ((kind = 'export') = (format IS NOT NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS privacy_requests_open
	ON apexops.privacy_requests (kind, tenant_id, user_id,
				     COALESCE(format, ''))
	WHERE status IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS privacy_requests_due
	ON apexops.privacy_requests (due_at)
	WHERE status IN ('queued', 'running', 'failed');
CREATE INDEX IF NOT EXISTS privacy_requests_expiry
	ON apexops.privacy_requests (expires_at)
	WHERE status = 'completed' AND kind = 'export';
CREATE INDEX IF NOT EXISTS privacy_requests_user
	ON apexops.privacy_requests (tenant_id, user_id);

COMMENT ON TABLE apexops.privacy_requests IS
	'data-subject requests (export, delete); file with apexops.request_privacy()';

-- How export shows a secret it must not reveal (API keys): the first four
-- characters and the last four of a long value, stars for the rest.
CREATE OR REPLACE FUNCTION apexops.privacy_mask(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE
		WHEN v IS NULL THEN NULL
		WHEN length(v) >= 16 THEN left(v, 4) || '****' || right(v, 4)
		ELSE '****'
	END
$$;

-- File a request: validates its arguments (kind export|delete; tenant and
-- user UUIDs; format jsonl, json (= jsonl) or csv for an export, default
-- jsonl, none for a delete), inserts the row and enqueues its job
-- (privacy-export or privacy-delete) in the caller's transaction; returns
-- the request id, or the id of the same request still open. Membership of
-- the user in the tenant is checked by the worker, which fails the request
-- with the reason (the request stays on record for the auditor).
CREATE OR REPLACE FUNCTION apexops.request_privacy(
	kind text, tenant text, "user" text, format text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	uuid_re constant text :=
		'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
	k text := request_privacy.kind;
	f text := lower(request_privacy.format);
	new_id bigint;
	job bigint;
BEGIN
	IF k IS NULL OR k NOT IN ('export', 'delete') THEN
		RAISE EXCEPTION 'invalid privacy request kind %: use export or delete',
			quote_nullable(k) USING ERRCODE = '22023';
	END IF;
	IF tenant IS NULL OR tenant !~ uuid_re THEN
		RAISE EXCEPTION 'invalid tenant id %: expected a UUID',
			quote_nullable(left(tenant, 64)) USING ERRCODE = '22023';
	END IF;
	IF request_privacy."user" IS NULL OR request_privacy."user" !~ uuid_re THEN
		RAISE EXCEPTION 'invalid user id %: expected a UUID',
			quote_nullable(left(request_privacy."user", 64))
			USING ERRCODE = '22023';
	END IF;
	IF k = 'export' THEN
		f := COALESCE(f, 'jsonl');
		IF f = 'json' THEN
			f := 'jsonl';
		END IF;
		IF f NOT IN ('jsonl', 'csv') THEN
			RAISE EXCEPTION 'invalid export format %: use jsonl (or json) or csv',
				quote_nullable(request_privacy.format)
				USING ERRCODE = '22023';
		END IF;
	ELSIF f IS NOT NULL THEN
		RAISE EXCEPTION 'a delete request takes no format (got %)',
			quote_literal(request_privacy.format) USING ERRCODE = '22023';
	END IF;

	INSERT INTO apexops.privacy_requests AS r
		(kind, tenant_id, user_id, format, requested_at, due_at)
	VALUES (k, tenant::uuid, request_privacy."user"::uuid, f,
		now(), now() + interval '1 month')
	ON CONFLICT (kind, tenant_id, user_id, COALESCE(format, ''))
		WHERE status IN ('queued', 'running')
	DO NOTHING
	RETURNING r.id INTO new_id;
	IF new_id IS NULL THEN
		SELECT r.id INTO new_id FROM apexops.privacy_requests r
		 WHERE r.kind = k AND r.tenant_id = tenant::uuid
		   AND r.user_id = request_privacy."user"::uuid
		   AND COALESCE(r.format, '') = COALESCE(f, '')
		   AND r.status IN ('queued', 'running');
		RETURN new_id;
	END IF;
	job := apexops.enqueue('privacy-' || k,
			       jsonb_build_object('request_id', new_id),
			       max_attempts => 5,
			       unique_key => 'privacy:' || new_id);
	UPDATE apexops.privacy_requests SET job_id = job WHERE id = new_id;
	RETURN new_id;
END
$$;
