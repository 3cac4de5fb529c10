<?php

namespace B24hub\Forwarder;

/**
 * Transport over PHP's HTTP stream wrapper: it needs no extension beyond
 * what every PHP build has (openssl for https), and it answers non-2xx
 * statuses with their body (ignore_errors) so the ingress's reason reaches
 * the settings page.
 */
final class StreamTransport implements Transport
{
    public function post(string $url, array $headers, string $body, int $timeout): array
    {
        $lines = [];
        foreach ($headers as $k => $v) {
            $lines[] = $k . ': ' . $v;
        }
        $ctx = stream_context_create([
            'http' => [
                'method' => 'POST',
                'header' => implode("\r\n", $lines),
                'content' => $body,
                'timeout' => $timeout,
                'ignore_errors' => true,
                'follow_location' => 0,
                'protocol_version' => 1.1,
            ],
        ]);
        $warning = '';
        set_error_handler(static function (int $no, string $msg) use (&$warning): bool {
            $warning = $msg;
            return true;
        });
        try {
            $answer = file_get_contents($url, false, $ctx);
        } finally {
            restore_error_handler();
        }
        $responseHeaders = function_exists('http_get_last_response_headers')
            ? (http_get_last_response_headers() ?? [])
            : ($http_response_header ?? []);
        if ($answer === false || !$responseHeaders) {
            throw new \RuntimeException('no answer from the ingress' . ($warning !== '' ? ': ' . $warning : ''));
        }
        if (!preg_match('#^HTTP/\S+\s+(\d{3})#', $responseHeaders[0], $m)) {
            throw new \RuntimeException('unreadable answer from the ingress');
        }
        return [(int) $m[1], $answer];
    }
}
