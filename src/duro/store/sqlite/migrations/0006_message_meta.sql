-- Inbox messages carry their payload opaque in data (encoded, maybe encrypted, by the
-- data converter's codecs) and what duro needs to read about them in meta (an update's
-- id, a child's status, a step task's attempt): no payload embedded in JSON any more.
ALTER TABLE inbox ADD COLUMN meta BLOB;
