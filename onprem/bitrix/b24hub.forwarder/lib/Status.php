<?php

namespace B24hub\Forwarder;

use Bitrix\Main\Config\Option;

/**
 * What the settings page shows about delivery: the last success, the last
 * error, and the backoff state the shipper resumes from. Kept with Option,
 * so the agent, the cron script and the admin page share it.
 */
final class Status
{
    public static function lastSuccessAt(): int
    {
        return (int) Option::get(Module::ID, 'last_success_at', '0');
    }

    public static function lastError(): string
    {
        return Option::get(Module::ID, 'last_error', '');
    }

    public static function lastErrorAt(): int
    {
        return (int) Option::get(Module::ID, 'last_error_at', '0');
    }

    public static function failures(): int
    {
        return (int) Option::get(Module::ID, 'failures', '0');
    }

    public static function nextAttemptAt(): int
    {
        return (int) Option::get(Module::ID, 'next_attempt_at', '0');
    }

    public static function lastCaptureError(): string
    {
        return Option::get(Module::ID, 'last_capture_error', '');
    }

    public static function succeeded(int $now): void
    {
        Option::set(Module::ID, 'last_success_at', (string) $now);
        if (self::failures() !== 0 || self::nextAttemptAt() !== 0) {
            Option::set(Module::ID, 'failures', '0');
            Option::set(Module::ID, 'next_attempt_at', '0');
        }
    }

    /**
     * Records a failed delivery and schedules the next attempt with
     * exponential backoff: 30 s doubling per consecutive failure up to
     * $maxBackoff, plus up to 10% jitter so many installations do not
     * retry in step after an ingress outage.
     */
    public static function failed(string $error, int $now, int $maxBackoff): int
    {
        $failures = self::failures() + 1;
        $delay = min($maxBackoff, 30 * (2 ** min($failures - 1, 20)));
        $delay += random_int(0, intdiv($delay, 10));
        Option::set(Module::ID, 'failures', (string) $failures);
        Option::set(Module::ID, 'next_attempt_at', (string) ($now + $delay));
        self::error($error, $now);
        return $delay;
    }

    /** Records an error without a backoff (a setting is missing). */
    public static function error(string $error, int $now): void
    {
        Option::set(Module::ID, 'last_error', mb_substr($error, 0, 500));
        Option::set(Module::ID, 'last_error_at', (string) $now);
    }

    public static function captureFailed(string $error): void
    {
        try {
            Option::set(Module::ID, 'last_capture_error', mb_substr(date('c') . ' ' . $error, 0, 500));
        } catch (\Throwable) {
            // The database is what failed; error_log has it.
        }
    }

    /** Lets the next run send at once (the "send now" button). */
    public static function clearBackoff(): void
    {
        Option::set(Module::ID, 'next_attempt_at', '0');
    }
}
