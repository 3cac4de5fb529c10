<?php
// Settings page of b24hub.forwarder (Settings → Module settings →
// b24hub forwarder). Bitrix includes it inside the admin prolog, with
// $APPLICATION, $USER and $mid set. It shows the delivery status and saves
// the settings through B24hub\Forwarder\Settings, which validates them and
// re-registers the event handlers.

use B24hub\Forwarder\Module;
use B24hub\Forwarder\Settings;
use B24hub\Forwarder\Shipper;
use B24hub\Forwarder\Spool;
use B24hub\Forwarder\Status;
use Bitrix\Main\Config\Option;
use Bitrix\Main\Loader;
use Bitrix\Main\Localization\Loc;

defined('B_PROLOG_INCLUDED') && B_PROLOG_INCLUDED === true || die();

/** @var CMain $APPLICATION */
Loc::loadMessages(__FILE__);
// The module's classes (Module::ID included) load with the module.
Loader::includeModule('b24hub.forwarder');
if ($APPLICATION->GetGroupRight('b24hub.forwarder') < 'W' && !$GLOBALS['USER']->IsAdmin()) {
    $APPLICATION->AuthForm(Loc::getMessage('ACCESS_DENIED'));
    return;
}

$settings = new Settings();
$errors = [];
$notice = '';
if ($_SERVER['REQUEST_METHOD'] === 'POST' && check_bitrix_sessid()) {
    if (isset($_POST['send_now'])) {
        Status::clearBackoff();
        $notice = Loc::getMessage('B24HUB_FORWARDER_SEND_RESULT', ['#RESULT#' => Shipper::fromSettings()->run()]);
    } elseif (isset($_POST['save'])) {
        $errors = $settings->save([
            'ingress_url' => (string) ($_POST['ingress_url'] ?? ''),
            'installation_id' => (string) ($_POST['installation_id'] ?? ''),
            'secret' => (string) ($_POST['secret'] ?? ''),
            'events' => (string) ($_POST['events'] ?? ''),
            'batch_size' => (string) ($_POST['batch_size'] ?? '100'),
        ]);
        $notice = $errors ? '' : Loc::getMessage('B24HUB_FORWARDER_SAVED');
    }
}

$fmt = static fn(int $ts): string => $ts > 0 ? date('Y-m-d H:i:s', $ts) : '—';
$oldest = Spool::oldest();
$h = static fn(string $s): string => htmlspecialcharsbx($s);

if ($errors) {
    CAdminMessage::ShowMessage(['TYPE' => 'ERROR', 'MESSAGE' => implode('<br>', array_map($h, $errors)), 'HTML' => true]);
} elseif ($notice) {
    CAdminMessage::ShowNote($notice);
}
?>
<h2><?= $h(Loc::getMessage('B24HUB_FORWARDER_STATUS')) ?></h2>
<table class="adm-detail-content-table edit-table">
  <tr><td width="40%"><?= $h(Loc::getMessage('B24HUB_FORWARDER_SPOOL_SIZE')) ?></td><td><b><?= Spool::size() ?></b><?= $oldest ? ' (' . $h(Loc::getMessage('B24HUB_FORWARDER_OLDEST')) . ' ' . $h($oldest->toString()) . ')' : '' ?></td></tr>
  <tr><td><?= $h(Loc::getMessage('B24HUB_FORWARDER_LAST_SUCCESS')) ?></td><td><?= $fmt(Status::lastSuccessAt()) ?></td></tr>
  <tr><td><?= $h(Loc::getMessage('B24HUB_FORWARDER_LAST_ERROR')) ?></td><td><?= $fmt(Status::lastErrorAt()) ?> <?= $h(Status::lastError()) ?></td></tr>
  <tr><td><?= $h(Loc::getMessage('B24HUB_FORWARDER_NEXT_ATTEMPT')) ?></td><td><?= $fmt(Status::nextAttemptAt()) ?> (<?= Status::failures() ?>)</td></tr>
  <?php if (Status::lastCaptureError() !== ''): ?>
  <tr><td><?= $h(Loc::getMessage('B24HUB_FORWARDER_CAPTURE_ERROR')) ?></td><td><?= $h(Status::lastCaptureError()) ?></td></tr>
  <?php endif ?>
</table>

<form method="post" action="<?= $h($APPLICATION->GetCurPage()) ?>?mid=<?= urlencode(Module::ID) ?>&amp;lang=<?= LANGUAGE_ID ?>">
<?= bitrix_sessid_post() ?>
<h2><?= $h(Loc::getMessage('B24HUB_FORWARDER_SETTINGS')) ?></h2>
<table class="adm-detail-content-table edit-table">
  <tr><td width="40%"><label for="ingress_url"><?= $h(Loc::getMessage('B24HUB_FORWARDER_INGRESS_URL')) ?></label></td>
      <td><input type="url" size="60" id="ingress_url" name="ingress_url" value="<?= $h($settings->ingressUrl()) ?>" placeholder="https://b24hub.example.com/onprem/v1/events"></td></tr>
  <tr><td><label for="installation_id"><?= $h(Loc::getMessage('B24HUB_FORWARDER_INSTALLATION_ID')) ?></label></td>
      <td><input type="text" size="40" id="installation_id" name="installation_id" value="<?= $h($settings->installationId()) ?>"></td></tr>
  <tr><td><label for="secret"><?= $h(Loc::getMessage('B24HUB_FORWARDER_SECRET')) ?></label></td>
      <td><input type="password" size="70" id="secret" name="secret" value="" autocomplete="new-password">
          <br><small><?= $h(Loc::getMessage('B24HUB_FORWARDER_SECRET_HINT')) ?></small>
          <br><code><?= $h($settings->secret()) ?></code></td></tr>
  <tr><td><label for="events"><?= $h(Loc::getMessage('B24HUB_FORWARDER_EVENTS')) ?></label></td>
      <td><textarea id="events" name="events" rows="8" cols="60"><?= $h(Option::get(Module::ID, 'events', '')) ?></textarea>
          <br><small><?= $h(Loc::getMessage('B24HUB_FORWARDER_EVENTS_HINT')) ?></small></td></tr>
  <tr><td><label for="batch_size"><?= $h(Loc::getMessage('B24HUB_FORWARDER_BATCH_SIZE')) ?></label></td>
      <td><input type="number" min="1" max="500" id="batch_size" name="batch_size" value="<?= $settings->batchSize() ?>"></td></tr>
</table>
<input type="submit" class="adm-btn-save" name="save" value="<?= $h(Loc::getMessage('B24HUB_FORWARDER_SAVE')) ?>">
<input type="submit" name="send_now" value="<?= $h(Loc::getMessage('B24HUB_FORWARDER_SEND_NOW')) ?>">
</form>
