<?php
// Drives b24hub.forwarder on the stand-in kernel from the command line, one
// process per step, so a test in another language can play an installation:
// each run is a new "request" sharing the SQLite database.
//
//   php forwarder.php DB install URL INSTALLATION SECRET   install and configure
//   php forwarder.php DB fire FIRST COUNT                  raise COUNT events (deal ids FIRST…)
//   php forwarder.php DB spool                             {"size":n,"ids":[…]} in order
//   php forwarder.php DB ship                              run the agent now; {"waiting":n,"last_error":…,"last_success_at":…}
//   php forwarder.php - sign SECRET TIMESTAMP < body       the X-B24hub-Signature of body
//
// Every command prints one JSON line (sign: the bare signature).

require_once __DIR__ . '/../kernel/kernel.php';

use B24hub\Forwarder\Module;
use B24hub\Forwarder\Settings;
use B24hub\Forwarder\Signer;
use B24hub\Forwarder\Spool;
use B24hub\Forwarder\Status;
use Bitrix\Main\Application;
use Bitrix\Main\Event;
use Bitrix\Main\Loader;

[$db, $cmd] = [$argv[1] ?? '', $argv[2] ?? ''];
$modules = dirname(__DIR__, 2);

if ($cmd === 'sign') {
    require_once $modules . '/b24hub.forwarder/include.php';
    echo Signer::sign($argv[3], (int) $argv[4], stream_get_contents(STDIN)), "\n";
    exit(0);
}

Application::boot($db, $modules);
$GLOBALS['USER'] = new CUser(1);

switch ($cmd) {
    case 'install':
        require_once $modules . '/b24hub.forwarder/install/index.php';
        (new b24hub_forwarder())->DoInstall();
        $errors = (new Settings())->save([
            'ingress_url' => $argv[3],
            'installation_id' => $argv[4],
            'secret' => $argv[5],
            'events' => "crm:OnAfterCrmDealAdd\ncrm:OnAfterCrmDealUpdate\ncrm:OnAfterCrmDealDelete\nmy.module:OnSomethingHappened",
            'batch_size' => '3',
        ]);
        if ($errors) {
            fwrite(STDERR, implode("\n", $errors) . "\n");
            exit(1);
        }
        echo json_encode(['installed' => Module::ID]), "\n";
        break;

    case 'fire':
        // A mix of the kinds of events an installation raises: CRM's
        // old-style events with field arrays or an id, and a custom
        // module's D7 event.
        $first = (int) $argv[3];
        for ($i = 0; $i < (int) $argv[4]; $i++) {
            $id = $first + $i;
            switch ($i % 4) {
                case 0:
                    $fields = ['ID' => $id, 'TITLE' => 'Deal ' . $id, 'STAGE_ID' => 'NEW'];
                    fire('crm', 'OnAfterCrmDealAdd', [&$fields]);
                    break;
                case 1:
                    $fields = ['ID' => $id, 'STAGE_ID' => 'WON', 'MODIFY_BY_ID' => 1];
                    fire('crm', 'OnAfterCrmDealUpdate', [&$fields]);
                    break;
                case 2:
                    fire('crm', 'OnAfterCrmDealDelete', [$id]);
                    break;
                default:
                    (new Event('my.module', 'OnSomethingHappened', ['id' => $id, 'data' => ['kind' => 'custom']]))->send();
            }
        }
        echo json_encode(['size' => Spool::size()]), "\n";
        break;

    case 'spool':
        Loader::includeModule('b24hub.forwarder');
        echo json_encode(['size' => Spool::size(), 'ids' => array_column(Spool::head(1000), 'EVENT_ID')]), "\n";
        break;

    case 'ship':
        // Make the agent due and skip any backoff, then let the kernel run
        // agents as it does on a hit.
        Loader::includeModule('b24hub.forwarder');
        Status::clearBackoff();
        Application::getConnection()->queryExecute('UPDATE b_agent SET NEXT_EXEC = 0 WHERE MODULE_ID = ?', [Module::ID]);
        \CAgent::CheckAgents();
        echo json_encode(['waiting' => Spool::size(), 'last_error' => Status::lastError(), 'last_success_at' => Status::lastSuccessAt()]), "\n";
        break;

    default:
        fwrite(STDERR, "unknown command {$cmd}\n");
        exit(2);
}

function fire(string $module, string $event, array $args): void
{
    foreach (GetModuleEvents($module, $event, true) as $handler) {
        ExecuteModuleEventEx($handler, $args);
    }
}
