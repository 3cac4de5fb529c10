<?php

use B24hub\Forwarder\Module;
use B24hub\Forwarder\Settings;
use B24hub\Forwarder\Shipper;
use B24hub\Forwarder\Spool;
use B24hub\Forwarder\Status;
use B24hub\Forwarder\Transport;
use Bitrix\Main\Application;
use PHPUnit\Framework\TestCase;

/**
 * A hand-written ingress: it checks each request the way the real one does
 * (signature over timestamp and body) and answers through $answer.
 */
final class FakeIngress implements Transport
{
    /** @var list<array{headers: array<string, string>, body: array}> */
    public array $requests = [];

    /** @var callable(array): array{0: int, 1: string} */
    public $answer;

    public function __construct(private string $secret)
    {
        $this->answer = static fn(array $body) => [200, json_encode(['acked' => array_column($body['events'], 'id')])];
    }

    public function post(string $url, array $headers, string $body, int $timeout): array
    {
        $want = 'v1=' . hash_hmac('sha256', $headers['X-B24hub-Timestamp'] . '.' . $body, $this->secret);
        if (!hash_equals($want, $headers['X-B24hub-Signature'])) {
            return [401, '{"error":"bad signature"}'];
        }
        $decoded = json_decode($body, true, 512, JSON_THROW_ON_ERROR);
        $this->requests[] = ['headers' => $headers, 'body' => $decoded];
        return ($this->answer)($decoded);
    }
}

final class ShipperTest extends TestCase
{
    private FakeIngress $ingress;
    private int $now = 1_800_000_000;

    protected function setUp(): void
    {
        Installation::installed();
        Installation::configure('https://hub.example.com/onprem/v1/events', 'crm:OnAfterCrmDealDelete', 2);
        $this->ingress = new FakeIngress(str_repeat('s', 40));
    }

    private function shipper(): Shipper
    {
        return new Shipper(new Settings(), $this->ingress, fn() => $this->now);
    }

    private function fire(int ...$ids): void
    {
        foreach ($ids as $id) {
            Installation::fireCompatible('crm', 'OnAfterCrmDealDelete', [$id]);
        }
    }

    /** @return list<string> entity ids of every event sent, in order */
    private function sent(): array
    {
        $out = [];
        foreach ($this->ingress->requests as $r) {
            foreach ($r['body']['events'] as $e) {
                $out[] = $e['entity_id'];
            }
        }
        return $out;
    }

    public function testShipsInOrderInBatchesAndEmptiesTheSpool(): void
    {
        $this->fire(1, 2, 3, 4, 5);
        $this->assertSame('sent', $this->shipper()->run());
        $this->assertCount(3, $this->ingress->requests, 'batch size 2 → 3 requests');
        $this->assertSame(['1', '2', '3', '4', '5'], $this->sent());
        $this->assertSame(0, Spool::size());
        $this->assertSame($this->now, Status::lastSuccessAt());
        $h = $this->ingress->requests[0]['headers'];
        $this->assertSame('crm-main', $h['X-B24hub-Installation']);
        $this->assertSame((string) $this->now, $h['X-B24hub-Timestamp']);
        $this->assertSame('crm-main', $this->ingress->requests[0]['body']['installation']);
        $this->assertSame('idle', $this->shipper()->run());
    }

    public function testDeletesOnlyAcknowledgedEvents(): void
    {
        $this->fire(1, 2);
        $this->ingress->answer = static fn(array $b) => [200, json_encode(['acked' => [$b['events'][0]['id']], 'error' => 'event store unavailable, retry later'])];
        $this->assertSame('failed', $this->shipper()->run());
        $this->assertSame(1, Spool::size());
        $this->assertSame('2', json_decode(Spool::head(1)[0]['PAYLOAD'], true)['entity_id']);
        $this->assertStringContainsString('stored 1 of 2 events: event store unavailable', Status::lastError());
    }

    public function testUnknownAckIdsDeleteNothing(): void
    {
        $this->fire(1);
        $this->ingress->answer = static fn() => [200, '{"acked":["00000000-0000-4000-8000-000000000000"]}'];
        $this->assertSame('failed', $this->shipper()->run());
        $this->assertSame(1, Spool::size());
    }

    public function testRefusalKeepsEverythingAndBacksOffExponentially(): void
    {
        $this->fire(1, 2, 3);
        $this->ingress->answer = static fn() => [401, '{"acked":[],"error":"stale timestamp: X-B24hub-Timestamp is 10m0s from the ingress clock, allowed ±5m0s"}'];
        $this->assertSame('failed', $this->shipper()->run());
        $this->assertSame(3, Spool::size());
        $this->assertStringStartsWith('HTTP 401: stale timestamp', Status::lastError());
        $first = Status::nextAttemptAt() - $this->now;
        $this->assertGreaterThanOrEqual(30, $first);
        $this->assertLessThanOrEqual(33, $first);

        $requests = count($this->ingress->requests);
        $this->assertSame('backoff', $this->shipper()->run(), 'sent during the backoff');
        $this->assertCount($requests, $this->ingress->requests);

        $this->now = Status::nextAttemptAt();
        $this->assertSame('failed', $this->shipper()->run());
        $second = Status::nextAttemptAt() - $this->now;
        $this->assertGreaterThanOrEqual(60, $second);
        $this->assertSame(2, Status::failures());

        // The ingress comes back: everything goes, in order, once.
        $this->ingress->answer = static fn(array $b) => [200, json_encode(['acked' => array_column($b['events'], 'id')])];
        $this->ingress->requests = [];
        $this->now = Status::nextAttemptAt();
        $this->assertSame('sent', $this->shipper()->run());
        $this->assertSame(['1', '2', '3'], $this->sent());
        $this->assertSame(0, Status::failures());
        $this->assertSame(0, Status::nextAttemptAt());
    }

    public function testBackoffIsCapped(): void
    {
        $this->fire(1);
        $this->ingress->answer = static fn() => [503, '{"error":"event store unavailable, retry later"}'];
        for ($i = 0; $i < 12; $i++) {
            $this->now = max($this->now, Status::nextAttemptAt());
            $this->shipper()->run();
        }
        $this->assertLessThanOrEqual(3600 * 1.1, Status::nextAttemptAt() - $this->now);
        $this->assertGreaterThanOrEqual(3600, Status::nextAttemptAt() - $this->now);
    }

    public function testNetworkErrorIsRecorded(): void
    {
        $this->fire(1);
        $shipper = new Shipper(new Settings(), new class implements Transport {
            public function post(string $url, array $headers, string $body, int $timeout): array
            {
                throw new \RuntimeException('no answer from the ingress: Connection refused');
            }
        }, fn() => $this->now);
        $this->assertSame('failed', $shipper->run());
        $this->assertSame('no answer from the ingress: Connection refused', Status::lastError());
        $this->assertSame(1, Spool::size());
    }

    public function testTooLargeHalvesTheBatch(): void
    {
        $this->fire(1, 2, 3, 4);
        $this->ingress->answer = static fn(array $b) => count($b['events']) > 1
            ? [413, '{"error":"body too large: send fewer events per delivery"}']
            : [200, json_encode(['acked' => array_column($b['events'], 'id')])];
        $this->assertSame('sent', $this->shipper()->run());
        $this->assertSame(0, Spool::size());
        $this->ingress->requests = array_values(array_filter($this->ingress->requests, static fn($r) => count($r['body']['events']) === 1));
        $this->assertSame(['1', '2', '3', '4'], $this->sent(), 'the accepted single-event deliveries');
    }

    public function testUnconfiguredRecordsTheReason(): void
    {
        \Bitrix\Main\Config\Option::set(Module::ID, 'ingress_url', '');
        $this->fire(1);
        $this->assertSame('unconfigured', $this->shipper()->run());
        $this->assertSame('not configured: ingress URL not set', Status::lastError());
        $this->assertCount(0, $this->ingress->requests);
    }

    public function testOneShipperAtATime(): void
    {
        $this->fire(1);
        // Another process (the cron script) holds the lock.
        $other = new \Bitrix\Main\DB\Connection((new ReflectionProperty(\Bitrix\Main\DB\Connection::class, 'path'))->getValue(Application::getConnection()));
        $this->assertTrue($other->lock(Module::LOCK));
        try {
            $this->assertSame('busy', $this->shipper()->run());
            $this->assertSame(1, Spool::size());
        } finally {
            $other->unlock(Module::LOCK);
        }
        $this->assertSame('sent', $this->shipper()->run());
    }

    public function testPayloadIsSentAsCaptured(): void
    {
        $this->fire(1);
        $payload = Spool::head(1)[0]['PAYLOAD'];
        $raw = null;
        $capture = new class ($raw) implements Transport {
            public function __construct(public ?string &$raw)
            {
            }

            public function post(string $url, array $headers, string $body, int $timeout): array
            {
                $this->raw = $body;
                return [200, json_encode(['acked' => array_column(json_decode($body, true)['events'], 'id')])];
            }
        };
        (new Shipper(new Settings(), $capture, fn() => $this->now))->run();
        $this->assertSame('{"installation":"crm-main","events":[' . $payload . ']}', $raw);
    }
}
