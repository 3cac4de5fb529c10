<?php

namespace B24hub\Forwarder;

/**
 * Sends one signed delivery. The shipper depends on this interface so tests
 * can answer without a network.
 */
interface Transport
{
    /**
     * POSTs $body with $headers to $url and returns [HTTP status, response
     * body]. Throws \RuntimeException when no answer arrived (connection
     * refused, timeout, TLS failure).
     *
     * @param array<string, string> $headers
     * @return array{0: int, 1: string}
     */
    public function post(string $url, array $headers, string $body, int $timeout): array;
}
