-- 0007_discharge: what the discharge-call outbox needs beside the PRD's
-- scheduled_discharge_calls (0003), see supervisor/discharge.h.
--
--   users.discharge_delay    a clinic's own delay from a completed
--                            consultation to its call (NULL: the
--                            configuration's discharge.delay)
--   customer_phone,          the client's phone as IDEXX gave it, and the
--   pet_name                 patient: what the call needs, copied with the
--                            notes (E.164 is checked when dialling)
--   next_attempt_at          a publish or cancel that failed waits for this
--   lease_until, leased_by   a publisher instance holds the row while its
--                            request to QStash is in flight; other
--                            instances skip it until the lease ends
--   cancel_message_id        a QStash message to DELETE: the consultation
--                            changed (cancelled, reopened, rescheduled)
--                            after the row was published
--   dial_retry               the row is 'claimed' but VAPI refused with a
--                            5xx or 429 before any call was made: the next
--                            delivery of the message may claim it again

alter table users add column if not exists discharge_delay interval
    check (discharge_delay is null or discharge_delay >= interval '0');

alter table scheduled_discharge_calls add column if not exists
    customer_phone text;
alter table scheduled_discharge_calls add column if not exists pet_name text;
alter table scheduled_discharge_calls add column if not exists
    next_attempt_at timestamptz not null default now();
alter table scheduled_discharge_calls add column if not exists
    lease_until timestamptz;
alter table scheduled_discharge_calls add column if not exists leased_by text;
alter table scheduled_discharge_calls add column if not exists
    cancel_message_id text;
alter table scheduled_discharge_calls add column if not exists
    dial_retry boolean not null default false;

-- The publisher's scan: rows to publish, and messages to cancel.
create index if not exists scheduled_discharge_calls_outbox_idx
    on scheduled_discharge_calls (next_attempt_at)
    where status = 'pending' or cancel_message_id is not null;
