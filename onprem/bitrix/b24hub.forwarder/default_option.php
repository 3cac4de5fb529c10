<?php
// Defaults Bitrix's Option::get falls back to for this module.
$b24hub_forwarder_default_option = [
    'ingress_url' => '',
    'installation_id' => '',
    'secret' => '',
    'events' => "crm:OnAfterCrmDealAdd\ncrm:OnAfterCrmDealUpdate\ncrm:OnAfterCrmDealDelete",
    'batch_size' => '100',
    'max_backoff' => '3600',
    'timeout' => '10',
];
