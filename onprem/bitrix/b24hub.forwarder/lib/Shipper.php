<?php

namespace B24hub\Forwarder;

use Bitrix\Main\Application;

/**
 * Ships the spool to the ingress: oldest first, in batches, one shipper at
 * a time (a named database lock), deleting exactly the events the ingress
 * acknowledged, and backing off after a failure. The agent and the cron
 * script both call run().
 */
final class Shipper
{
    /** @var callable(): int */
    private $clock;

    public function __construct(
        private Settings $settings,
        private Transport $transport,
        ?callable $clock = null,
    ) {
        $this->clock = $clock ?? static fn(): int => time();
    }

    /** A shipper with the stored settings and the stream transport. */
    public static function fromSettings(): self
    {
        return new self(new Settings(), new StreamTransport());
    }

    /**
     * Sends up to $maxBatches batches and returns what happened: "sent"
     * (the spool is empty or $maxBatches were sent), "idle" (nothing to
     * send), "backoff" (waiting after a failure), "busy" (another shipper
     * holds the lock), "unconfigured", or "failed".
     */
    public function run(int $maxBatches = 20): string
    {
        $now = ($this->clock)();
        if (($missing = $this->settings->incomplete()) !== null) {
            Status::error('not configured: ' . $missing, $now);
            return 'unconfigured';
        }
        if (Status::nextAttemptAt() > $now) {
            return 'backoff';
        }
        $conn = Application::getConnection();
        if (!$conn->lock(Module::LOCK)) {
            return 'busy';
        }
        try {
            return $this->ship($maxBatches);
        } finally {
            $conn->unlock(Module::LOCK);
        }
    }

    private function ship(int $maxBatches): string
    {
        $batch = $this->settings->batchSize();
        $sent = 0;
        for ($i = 0; $i < $maxBatches; $i++) {
            $rows = Spool::head($batch);
            if (!$rows) {
                return $sent > 0 ? 'sent' : 'idle';
            }
            $now = ($this->clock)();
            try {
                [$status, $answer] = $this->send($rows, $now);
            } catch (\RuntimeException $e) {
                return $this->fail($e->getMessage());
            }
            if ($status === 413 && $batch > 1) {
                // The ingress's body limit: halve the batch and go on.
                $batch = max(1, intdiv($batch, 2));
                continue;
            }
            $decoded = json_decode($answer, true);
            $acked = is_array($decoded['acked'] ?? null) ? array_filter($decoded['acked'], 'is_string') : [];
            $reason = is_string($decoded['error'] ?? null) ? $decoded['error'] : substr(trim($answer), 0, 200);
            if ($status !== 200) {
                return $this->fail('HTTP ' . $status . ': ' . ($reason !== '' ? $reason : 'no reason given'));
            }
            $removed = Spool::remove($rows, $acked);
            $sent += $removed;
            if ($removed < count($rows)) {
                // Only a prefix was stored: the rest is sent again later.
                return $this->fail('ingress stored ' . $removed . ' of ' . count($rows) . ' events: ' . ($reason !== '' ? $reason : 'no reason given'));
            }
            Status::succeeded($now);
        }
        return 'sent';
    }

    /**
     * @param list<array{ID: int, EVENT_ID: string, PAYLOAD: string}> $rows
     * @return array{0: int, 1: string}
     */
    private function send(array $rows, int $now): array
    {
        // The payloads are spliced in as stored: the bytes signed are the
        // bytes captured, with no decode/encode round trip.
        $body = '{"installation":' . json_encode($this->settings->installationId()) . ',"events":['
            . implode(',', array_column($rows, 'PAYLOAD')) . ']}';
        return $this->transport->post($this->settings->ingressUrl(), [
            'Content-Type' => 'application/json',
            'X-B24hub-Installation' => $this->settings->installationId(),
            'X-B24hub-Timestamp' => (string) $now,
            'X-B24hub-Signature' => Signer::sign($this->settings->secret(), $now, $body),
            'User-Agent' => 'b24hub.forwarder/1.0',
        ], $body, $this->settings->timeout());
    }

    private function fail(string $error): string
    {
        Status::failed($error, ($this->clock)(), $this->settings->maxBackoff());
        return 'failed';
    }
}
