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

/**
 * The admin page's application object; only what a module's options.php
 * calls: the module access level, the login form, the current page.
 */
class CMain
{
    /** Stand-in only: the current user's access level per module ('D' none … 'W' write). */
    public array $rights = [];

    /** Stand-in only: set when AuthForm was shown. */
    public ?string $authForm = null;

    public function GetGroupRight($module_id)
    {
        return $this->rights[$module_id] ?? 'D';
    }

    public function AuthForm($mess)
    {
        $this->authForm = (string) $mess;
    }

    public function GetCurPage($get_index_page = null)
    {
        return '/bitrix/admin/settings.php';
    }
}

/** Messages on admin pages. */
class CAdminMessage
{
    public static function ShowMessage($message)
    {
        $m = is_array($message) ? $message['MESSAGE'] : $message;
        echo '<div class="adm-info-message-red">', $m, '</div>';
    }

    public static function ShowNote($message)
    {
        echo '<div class="adm-info-message-green">', htmlspecialcharsbx($message), '</div>';
    }
}

/** The session's CSRF token, as bitrix_sessid() returns it. */
function bitrix_sessid()
{
    return $GLOBALS['STANDIN_SESSID'] ??= bin2hex(random_bytes(16));
}

/** The hidden form field carrying the CSRF token. */
function bitrix_sessid_post($varname = 'sessid')
{
    return '<input type="hidden" name="' . $varname . '" id="' . $varname . '" value="' . bitrix_sessid() . '" />';
}

/** Whether the request carries the session's CSRF token. */
function check_bitrix_sessid($varname = 'sessid')
{
    return isset($_REQUEST[$varname]) && hash_equals(bitrix_sessid(), (string) $_REQUEST[$varname]);
}
