-- The outbox table belongs to libs/consumer/outbox now, which creates and
-- migrates it itself (store.Migrate runs it after this). A database whose
-- 001 created the service's own copy hands that table over: renamed, its
-- rows (unpublished ones included) are moved into the library's table by
-- the library's first migration, which then drops it. On a new database
-- there is nothing to hand over.
ALTER TABLE IF EXISTS outbox RENAME TO outbox_handover;
