<?php

use B24hub\Forwarder\Module;
use B24hub\Forwarder\Spool;
use B24hub\Forwarder\Status;
use Bitrix\Main\Application;
use PHPUnit\Framework\TestCase;

final class AgentTest extends TestCase
{
    public function testAgentRunsFromCheckAgentsKeepsItselfAndRecordsTheError(): void
    {
        Installation::installed();
        // Port 9 (discard) on loopback: nothing listens, the connection is refused.
        Installation::configure('http://127.0.0.1:9/onprem/v1/events', 'crm:OnAfterCrmDealDelete');
        Installation::fireCompatible('crm', 'OnAfterCrmDealDelete', [1]);
        \CAgent::CheckAgents();
        $this->assertStringStartsWith('no answer from the ingress', Status::lastError());
        $this->assertSame(1, Spool::size());
        $agents = Application::getConnection()->fetchAll('SELECT NAME, NEXT_EXEC FROM b_agent');
        $this->assertCount(1, $agents);
        $this->assertSame(Module::AGENT, $agents[0]['NAME']);
        $this->assertGreaterThan(time(), (int) $agents[0]['NEXT_EXEC']);
    }
}
