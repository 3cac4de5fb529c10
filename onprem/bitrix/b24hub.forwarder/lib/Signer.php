<?php

namespace B24hub\Forwarder;

/**
 * Signs deliveries the way the ingress verifies them.
 */
final class Signer
{
    /**
     * The X-B24hub-Signature value: "v1=" and the hex HMAC-SHA256, keyed by
     * the installation's secret, of the unix timestamp, a '.', and the body.
     * The timestamp is signed too, so an old request cannot be re-dated.
     */
    public static function sign(string $secret, int $timestamp, string $body): string
    {
        return 'v1=' . hash_hmac('sha256', $timestamp . '.' . $body, $secret);
    }
}
