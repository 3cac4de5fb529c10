<?php
// Stand-in for the old-kernel globals the module touches: CModule (the
// installer's base class), CAgent, GetModuleEvents/ExecuteModuleEventEx
// (how the CRM module raises OnAfterCrmDeal… events), CUser and
// htmlspecialcharsbx.

use Bitrix\Main\Application;
use Bitrix\Main\EventManager;

abstract class CModule
{
    public $MODULE_ID;
    public $MODULE_VERSION;
    public $MODULE_VERSION_DATE;
    public $MODULE_NAME;
    public $MODULE_DESCRIPTION;
    public $PARTNER_NAME;
    public $PARTNER_URI;

    public function IsInstalled(): bool
    {
        return \Bitrix\Main\ModuleManager::isModuleInstalled($this->MODULE_ID);
    }
}

/**
 * Agents: PHP calls stored in b_agent and run when due. A call that
 * returns a string is kept with that string as its new call; any other
 * result removes the agent.
 */
final class CAgent
{
    public static function AddAgent($name, $module = '', $period = 'N', $interval = 86400, $datecheck = '', $active = 'Y', $next_exec = '', $sort = 100)
    {
        $c = Application::getConnection();
        if ($c->fetchValue('SELECT 1 FROM b_agent WHERE NAME = ? AND COALESCE(MODULE_ID, \'\') = ?', [$name, (string) $module])) {
            return false;
        }
        $next = $next_exec !== '' ? strtotime($next_exec) : time();
        $c->queryExecute('INSERT INTO b_agent (MODULE_ID, SORT, NAME, ACTIVE, NEXT_EXEC, AGENT_INTERVAL, IS_PERIOD) VALUES (?,?,?,?,?,?,?)',
            [$module, $sort, $name, $active, $next, (int) $interval, $period]);
        return (int) $c->getPdo()->lastInsertId();
    }

    public static function RemoveAgent($name, $module = '')
    {
        Application::getConnection()->queryExecute('DELETE FROM b_agent WHERE NAME = ? AND COALESCE(MODULE_ID, \'\') = ?', [$name, (string) $module]);
    }

    public static function RemoveModuleAgents($module)
    {
        Application::getConnection()->queryExecute('DELETE FROM b_agent WHERE MODULE_ID = ?', [$module]);
    }

    /** Runs every active agent that is due, as the kernel does on a hit or from cron. */
    public static function CheckAgents(): void
    {
        $c = Application::getConnection();
        foreach ($c->fetchAll('SELECT * FROM b_agent WHERE ACTIVE = \'Y\' AND NEXT_EXEC <= ? ORDER BY SORT, ID', [time()]) as $a) {
            if ($a['MODULE_ID'] !== '' && $a['MODULE_ID'] !== null && !\Bitrix\Main\Loader::includeModule($a['MODULE_ID'])) {
                continue;
            }
            $result = eval('return ' . $a['NAME']);
            if (is_string($result) && $result !== '') {
                $c->queryExecute('UPDATE b_agent SET NAME = ?, NEXT_EXEC = ? WHERE ID = ?', [$result, time() + (int) $a['AGENT_INTERVAL'], $a['ID']]);
            } else {
                $c->queryExecute('DELETE FROM b_agent WHERE ID = ?', [$a['ID']]);
            }
        }
    }
}

/** Returns the handlers of an old-style event (fetchAll: as an array). */
function GetModuleEvents($MODULE_ID, $MESSAGE_ID, $bReturnArray = false)
{
    $handlers = EventManager::getInstance()->findEventHandlers($MODULE_ID, $MESSAGE_ID);
    if ($bReturnArray) {
        return $handlers;
    }
    return new class ($handlers) {
        public function __construct(private array $rows)
        {
        }

        public function Fetch()
        {
            return array_shift($this->rows) ?? false;
        }
    };
}

/** Calls one handler with its TO_METHOD_ARG followed by the event's arguments. */
function ExecuteModuleEventEx($arEvent, $arParams = [])
{
    return EventManager::call($arEvent, $arParams);
}

/** The kernel's user object; only what CurrentUser reads. */
class CUser
{
    public function __construct(private ?int $id = null)
    {
    }

    public function GetID()
    {
        return $this->id;
    }

    public function IsAdmin(): bool
    {
        return $this->id === 1;
    }
}

function htmlspecialcharsbx($string, $flags = ENT_COMPAT, $doubleEncode = true)
{
    return htmlspecialchars((string) $string, $flags, 'UTF-8', $doubleEncode);
}
