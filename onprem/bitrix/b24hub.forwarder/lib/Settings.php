<?php

namespace B24hub\Forwarder;

use Bitrix\Main\Config\Option;

/**
 * The module's settings, kept with Bitrix's Option API (table b_option).
 * Every value has a default in default_option.php.
 */
final class Settings
{
    /** Shortest accepted secret: the ingress requires 32 bytes. */
    public const MIN_SECRET = 32;

    public function ingressUrl(): string
    {
        return trim(Option::get(Module::ID, 'ingress_url', ''));
    }

    public function installationId(): string
    {
        return trim(Option::get(Module::ID, 'installation_id', ''));
    }

    public function secret(): string
    {
        return Option::get(Module::ID, 'secret', '');
    }

    public function batchSize(): int
    {
        return max(1, min(500, (int) Option::get(Module::ID, 'batch_size', '100')));
    }

    public function maxBackoff(): int
    {
        return max(30, (int) Option::get(Module::ID, 'max_backoff', '3600'));
    }

    public function timeout(): int
    {
        return max(1, min(60, (int) Option::get(Module::ID, 'timeout', '10')));
    }

    /**
     * The subscribed events as [module, event] pairs.
     *
     * @return list<array{0: string, 1: string}>
     */
    public function events(): array
    {
        return self::parseEvents(Option::get(Module::ID, 'events', ''))[0];
    }

    /**
     * Says what is missing before the shipper can send; null when complete.
     */
    public function incomplete(): ?string
    {
        if ($this->ingressUrl() === '') {
            return 'ingress URL not set';
        }
        if ($this->installationId() === '') {
            return 'installation id not set';
        }
        if (strlen($this->secret()) < self::MIN_SECRET) {
            return 'secret not set (at least ' . self::MIN_SECRET . ' characters)';
        }
        return null;
    }

    /**
     * Parses the events setting: one "module:Event" per line; blank lines
     * and lines starting with # are ignored.
     *
     * @return array{0: list<array{0: string, 1: string}>, 1: list<string>} pairs and errors
     */
    public static function parseEvents(string $text): array
    {
        $pairs = [];
        $errors = [];
        $seen = [];
        foreach (preg_split('/\R/', $text) as $n => $line) {
            $line = trim($line);
            if ($line === '' || $line[0] === '#') {
                continue;
            }
            if (!preg_match('/^([a-z0-9_.]{1,64}):([A-Za-z0-9_]{1,120})$/', $line, $m)) {
                $errors[] = 'line ' . ($n + 1) . ': "' . $line . '" is not module:EventName';
                continue;
            }
            $key = $m[1] . ':' . strtolower($m[2]);
            if (isset($seen[$key])) {
                continue;
            }
            $seen[$key] = true;
            $pairs[] = [$m[1], $m[2]];
        }
        return [$pairs, $errors];
    }

    /**
     * Validates and stores the settings form, then re-registers the event
     * handlers. Returns the errors; nothing is stored when there are any.
     *
     * @param array<string, string> $in
     * @return list<string>
     */
    public function save(array $in): array
    {
        $errors = [];
        $url = trim($in['ingress_url'] ?? '');
        $parts = parse_url($url);
        if ($url !== '' && (!$parts || !in_array($parts['scheme'] ?? '', ['http', 'https'], true) || empty($parts['host']))) {
            $errors[] = 'ingress URL must be an http(s) URL';
        }
        $id = trim($in['installation_id'] ?? '');
        if ($id !== '' && !preg_match('/^[A-Za-z0-9_-]{1,64}$/', $id)) {
            $errors[] = 'installation id: 1-64 letters, digits, "_" or "-"';
        }
        $secret = $in['secret'] ?? '';
        if ($secret !== '' && strlen($secret) < self::MIN_SECRET) {
            $errors[] = 'secret must be at least ' . self::MIN_SECRET . ' characters';
        }
        [$pairs, $eventErrors] = self::parseEvents($in['events'] ?? '');
        $errors = array_merge($errors, $eventErrors);
        $batch = (int) ($in['batch_size'] ?? 100);
        if ($batch < 1 || $batch > 500) {
            $errors[] = 'batch size must be 1-500';
        }
        if ($errors) {
            return $errors;
        }
        Option::set(Module::ID, 'ingress_url', $url);
        Option::set(Module::ID, 'installation_id', $id);
        if ($secret !== '') { // an empty field keeps the stored secret
            Option::set(Module::ID, 'secret', $secret);
        }
        Option::set(Module::ID, 'events', implode("\n", array_map(static fn($p) => $p[0] . ':' . $p[1], $pairs)));
        Option::set(Module::ID, 'batch_size', (string) $batch);
        Subscriptions::sync($pairs);
        return [];
    }

    /** Returns a new random secret: 32 random bytes as 64 hex characters. */
    public static function newSecret(): string
    {
        return bin2hex(random_bytes(32));
    }
}
