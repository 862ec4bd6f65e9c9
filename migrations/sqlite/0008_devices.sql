-- The device register (`vakt import devices`): alarm devices that report over SIA DC-09
-- or SCAIP, each tied to a resident (src/live/devices). protocol: dc09 or scaip;
-- account: the DC-09 account (hex, upper case) or the SCAIP controller id (cid);
-- aes_key: the DC-09 AES key in hex, '' for none; heartbeat_secs: the supervision
-- interval the device is set to, NULL for an unsupervised device.
-- Keep in step with ../postgres/0008_devices.sql.
CREATE TABLE devices (
    id             TEXT PRIMARY KEY,
    protocol       TEXT   NOT NULL,
    account        TEXT   NOT NULL,
    resident_id    TEXT   NOT NULL,
    aes_key        TEXT   NOT NULL,
    heartbeat_secs BIGINT,
    updated_ms     BIGINT NOT NULL
);
CREATE UNIQUE INDEX devices_by_account ON devices (protocol, account);

-- When each device was last heard, stored with the engine's batches: supervision
-- carries on across a restart. silent_since_ms: the device's heartbeat_missed alarm
-- was raised for the silence that began then (NULL: heard within its interval).
CREATE TABLE device_contact (
    device_id       TEXT PRIMARY KEY,
    last_heard_ms   BIGINT NOT NULL,
    silent_since_ms BIGINT
);
