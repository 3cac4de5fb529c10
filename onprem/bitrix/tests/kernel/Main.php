<?php
// Stand-in for the parts of the Bitrix "main" module (D7 kernel) that
// b24hub.forwarder calls. The real kernel is not open source; each class
// here keeps the documented signature and behaviour of the method it stands
// in for (see docs/onprem.md for the sources) and nothing else. State lives
// in SQLite through PDO, in tables named like the kernel's (b_option,
// b_module, b_module_to_module, b_agent), so separate PHP processes share
// it as separate requests of one installation do.

namespace Bitrix\Main;

final class Application
{
    private static ?DB\Connection $connection = null;

    /** Stand-in only: points the kernel at a SQLite file and a modules folder. */
    public static function boot(string $dbPath, string $modulesRoot): void
    {
        self::$connection = new DB\Connection($dbPath);
        Loader::$modulesRoot = rtrim($modulesRoot, '/');
        EventManager::reset();
        Config\Option::reset();
        self::$connection->bootstrapKernelTables();
    }

    public static function getConnection(): DB\Connection
    {
        if (self::$connection === null) {
            throw new SystemException('stand-in kernel not booted');
        }
        return self::$connection;
    }
}

class SystemException extends \Exception
{
}

class ArgumentException extends SystemException
{
}

final class Loader
{
    /** Stand-in only: the folder holding module folders (local/modules). */
    public static string $modulesRoot = '';

    /** @var array<string, bool> */
    private static array $included = [];

    /**
     * Includes an installed module's include.php once and reports whether
     * the module is installed, as Loader::includeModule does.
     */
    public static function includeModule(string $moduleName): bool
    {
        if (!ModuleManager::isModuleInstalled($moduleName)) {
            return false;
        }
        if (!isset(self::$included[$moduleName])) {
            self::$included[$moduleName] = true;
            $file = self::$modulesRoot . '/' . $moduleName . '/include.php';
            if (is_file($file)) {
                require_once $file;
            }
        }
        return true;
    }

    public static function getLocal(string $path): string|false
    {
        $file = self::$modulesRoot . '/' . preg_replace('#^modules/#', '', $path);
        return file_exists($file) ? $file : false;
    }
}

final class ModuleManager
{
    public static function registerModule(string $moduleName): void
    {
        Application::getConnection()->queryExecute('INSERT OR IGNORE INTO b_module (ID) VALUES (?)', [$moduleName]);
    }

    public static function unRegisterModule(string $moduleName): void
    {
        $c = Application::getConnection();
        $c->queryExecute('DELETE FROM b_agent WHERE MODULE_ID = ?', [$moduleName]);
        $c->queryExecute('DELETE FROM b_module_to_module WHERE FROM_MODULE_ID = ? OR TO_MODULE_ID = ?', [$moduleName, $moduleName]);
        $c->queryExecute('DELETE FROM b_option WHERE MODULE_ID = ?', [$moduleName]);
        $c->queryExecute('DELETE FROM b_module WHERE ID = ?', [$moduleName]);
    }

    public static function isModuleInstalled(string $moduleName): bool
    {
        if ($moduleName === 'main' || $moduleName === 'crm') {
            return true; // the kernel's own modules are always there
        }
        return (bool) Application::getConnection()->fetchValue('SELECT 1 FROM b_module WHERE ID = ?', [$moduleName]);
    }
}

/**
 * A D7 event: module, type and parameters; send() calls every handler.
 */
class Event
{
    /** @var list<EventResult> */
    private array $results = [];

    public function __construct(
        protected string $moduleId,
        protected string $type,
        protected array $parameters = [],
        protected ?array $filter = null,
    ) {
    }

    public function getModuleId(): string
    {
        return $this->moduleId;
    }

    public function getEventType(): string
    {
        return $this->type;
    }

    public function getParameters(): array
    {
        return $this->parameters;
    }

    public function getParameter(string $key): mixed
    {
        return $this->parameters[$key] ?? null;
    }

    public function send($sender = null): void
    {
        EventManager::getInstance()->send($this);
    }

    public function addResult(EventResult $r): void
    {
        $this->results[] = $r;
    }

    /** @return list<EventResult> */
    public function getResults(): array
    {
        return $this->results;
    }
}

class EventResult
{
    public const UNDEFINED = 0;
    public const SUCCESS = 1;
    public const ERROR = 2;

    public function __construct(private int $type = self::UNDEFINED, private mixed $parameters = null, private ?string $moduleId = null)
    {
    }

    public function getType(): int
    {
        return $this->type;
    }
}

/**
 * Short-term (addEventHandler) and persistent (registerEventHandler, table
 * b_module_to_module) handler registration, and dispatch.
 */
final class EventManager
{
    private static ?EventManager $instance = null;

    /** @var list<array<string, mixed>> runtime handlers */
    private array $runtime = [];

    public static function getInstance(): self
    {
        return self::$instance ??= new self();
    }

    /** Stand-in only: forgets runtime handlers (a new request). */
    public static function reset(): void
    {
        self::$instance = null;
    }

    /** Runtime handler, version 2: it receives the Event object. */
    public function addEventHandler(string $fromModuleId, string $eventType, callable|array $callback, $includeFile = false, int $sort = 100): int
    {
        $this->runtime[] = ['FROM_MODULE_ID' => strtoupper($fromModuleId), 'MESSAGE_ID' => strtoupper($eventType), 'CALLBACK' => $callback,
            'SORT' => $sort, 'TO_MODULE_ID' => '', 'TO_CLASS' => '', 'TO_METHOD' => '', 'TO_METHOD_ARG' => [], 'VERSION' => 2, 'TO_PATH' => ''];
        return count($this->runtime) - 1;
    }

    /** Runtime handler, version 1: it receives the event's arguments. */
    public function addEventHandlerCompatible(string $fromModuleId, string $eventType, callable|array $callback, $includeFile = false, int $sort = 100): int
    {
        $key = $this->addEventHandler($fromModuleId, $eventType, $callback, $includeFile, $sort);
        $this->runtime[$key]['VERSION'] = 1;
        return $key;
    }

    public function registerEventHandler($fromModuleId, $eventType, $toModuleId, $toClass = '', $toMethod = '', $sort = 100, $toPath = '', $toMethodArg = []): void
    {
        $this->register($fromModuleId, $eventType, $toModuleId, $toClass, $toMethod, $sort, $toPath, $toMethodArg, 2);
    }

    public function registerEventHandlerCompatible($fromModuleId, $eventType, $toModuleId, $toClass = '', $toMethod = '', $sort = 100, $toPath = '', $toMethodArg = []): void
    {
        $this->register($fromModuleId, $eventType, $toModuleId, $toClass, $toMethod, $sort, $toPath, $toMethodArg, 1);
    }

    private function register($from, $event, $toModule, $toClass, $toMethod, $sort, $toPath, $toMethodArg, int $version): void
    {
        $c = Application::getConnection();
        $arg = is_array($toMethodArg) && $toMethodArg ? serialize($toMethodArg) : '';
        // Like the kernel: the same handler with the same arguments is stored once.
        $exists = $c->fetchValue('SELECT 1 FROM b_module_to_module WHERE FROM_MODULE_ID = ? AND MESSAGE_ID = ? AND TO_MODULE_ID = ? AND TO_CLASS = ? AND TO_METHOD = ? AND TO_PATH = ? AND TO_METHOD_ARG = ?',
            [$from, $event, $toModule, $toClass, $toMethod, $toPath, $arg]);
        if ($exists) {
            return;
        }
        $c->queryExecute('INSERT INTO b_module_to_module (SORT, FROM_MODULE_ID, MESSAGE_ID, TO_MODULE_ID, TO_CLASS, TO_METHOD, TO_PATH, TO_METHOD_ARG, VERSION) VALUES (?,?,?,?,?,?,?,?,?)',
            [$sort, $from, $event, $toModule, $toClass, $toMethod, $toPath, $arg, $version]);
    }

    public function unRegisterEventHandler($fromModuleId, $eventType, $toModuleId, $toClass = '', $toMethod = '', $toPath = '', $toMethodArg = []): void
    {
        $arg = is_array($toMethodArg) && $toMethodArg ? serialize($toMethodArg) : '';
        Application::getConnection()->queryExecute('DELETE FROM b_module_to_module WHERE FROM_MODULE_ID = ? AND MESSAGE_ID = ? AND TO_MODULE_ID = ? AND TO_CLASS = ? AND TO_METHOD = ? AND TO_PATH = ? AND TO_METHOD_ARG = ?',
            [$fromModuleId, $eventType, $toModuleId, $toClass, $toMethod, $toPath, $arg]);
    }

    /**
     * Every handler of an event, persistent and runtime, by SORT; module and
     * event names compare case-insensitively, as in the kernel.
     *
     * @return list<array<string, mixed>>
     */
    public function findEventHandlers(string $eventModuleId, string $eventType): array
    {
        $rows = Application::getConnection()->fetchAll('SELECT * FROM b_module_to_module WHERE UPPER(FROM_MODULE_ID) = ? AND UPPER(MESSAGE_ID) = ? ORDER BY SORT, ID',
            [strtoupper($eventModuleId), strtoupper($eventType)]);
        $out = [];
        foreach ($rows as $r) {
            $r['TO_METHOD_ARG'] = $r['TO_METHOD_ARG'] !== '' ? unserialize($r['TO_METHOD_ARG']) : [];
            $r['SORT'] = (int) $r['SORT'];
            $r['VERSION'] = (int) $r['VERSION'];
            $out[] = $r;
        }
        foreach ($this->runtime as $h) {
            if ($h['FROM_MODULE_ID'] === strtoupper($eventModuleId) && $h['MESSAGE_ID'] === strtoupper($eventType)) {
                $out[] = $h;
            }
        }
        usort($out, static fn($a, $b) => $a['SORT'] <=> $b['SORT']);
        return $out;
    }

    /** Dispatches a D7 event: version 2 handlers get the Event object. */
    public function send(Event $event): void
    {
        foreach ($this->findEventHandlers($event->getModuleId(), $event->getEventType()) as $h) {
            $args = $h['VERSION'] === 2 ? [$event] : array_values($event->getParameters());
            $result = self::call($h, $args);
            if ($result instanceof EventResult) {
                $event->addResult($result);
            }
        }
    }

    /** Includes the handler's module (or file) and calls it with TO_METHOD_ARG first. */
    public static function call(array $h, array $args): mixed
    {
        if (($h['TO_MODULE_ID'] ?? '') !== '' && !Loader::includeModule($h['TO_MODULE_ID'])) {
            return null;
        }
        $callback = $h['CALLBACK'] ?? [$h['TO_CLASS'], $h['TO_METHOD']];
        return call_user_func_array($callback, array_merge($h['TO_METHOD_ARG'] ?? [], $args));
    }
}
