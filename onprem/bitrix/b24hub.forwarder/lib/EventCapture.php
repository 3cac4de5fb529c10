<?php

namespace B24hub\Forwarder;

use Bitrix\Main\Engine\CurrentUser;

/**
 * The event handler. It runs inside the user's request, so it only writes
 * one spool row: no network, no waiting on the ingress. When the event is
 * raised inside a database transaction (a CRM save), the row commits or
 * rolls back with the change it describes.
 */
final class EventCapture
{
    /**
     * Handler for every subscribed event. Subscriptions registers it with
     * the module and event name as leading arguments (TO_METHOD_ARG); the
     * event's own arguments follow. It never returns false, so it never
     * cancels an OnBefore… event.
     */
    public static function handle(string $module, string $event, mixed ...$args): void
    {
        try {
            $record = Serializer::record($module, $event, $args, self::userId(), new \DateTimeImmutable('now'));
            Spool::append($record['id'], Serializer::encode($record));
        } catch (\Throwable $e) {
            // A spool failure must not break the user's save; it is visible
            // on the settings page and in the PHP error log.
            Status::captureFailed($module . ':' . $event . ': ' . $e->getMessage());
            error_log('b24hub.forwarder: event ' . $module . ':' . $event . ' not spooled: ' . $e->getMessage());
        }
    }

    private static function userId(): ?int
    {
        try {
            $id = CurrentUser::get()->getId();
            return $id === null ? null : (int) $id;
        } catch (\Throwable) {
            return null; // no user context (agent, cron)
        }
    }
}
