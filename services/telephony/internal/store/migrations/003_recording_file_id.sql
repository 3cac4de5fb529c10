-- A recording's download URL carries a live auth token: it is no longer
-- stored (the telephony service resolves a fresh one from record_file_id
-- when asked, eventbus.ControlRecording). Remove the stored copies.
UPDATE calls SET fields = fields - 'RECORD_DOWNLOAD_URL' WHERE fields ? 'RECORD_DOWNLOAD_URL';
ALTER TABLE calls DROP COLUMN record_url;
