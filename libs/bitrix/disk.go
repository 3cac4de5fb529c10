package bitrix

import (
	"context"
	"encoding/json"
)

// DiskFile is disk.file.get's answer; fields mirror the API's (see the
// JSON tags). DownloadURL is signed and is fetched
// with a separate GET (§5.5).
type DiskFile struct {
	ID          ID     `json:"ID"`
	Name        string `json:"NAME"`
	Size        ID     `json:"SIZE"`
	StorageID   ID     `json:"STORAGE_ID"`
	ParentID    ID     `json:"PARENT_ID"`
	CreateTime  string `json:"CREATE_TIME"`
	UpdateTime  string `json:"UPDATE_TIME"`
	DownloadURL string `json:"DOWNLOAD_URL"`
	DetailURL   string `json:"DETAIL_URL"`
}

// GetDiskFile calls disk.file.get, e.g. for a call's RECORD_FILE_ID.
func (c *Client) GetDiskFile(ctx context.Context, id ID) (*DiskFile, error) {
	resp, err := c.Do(ctx, "disk.file.get", map[string]any{"id": id})
	if err != nil {
		return nil, err
	}
	if resp.IsEmptyResult() {
		return nil, &Error{Status: 200, Method: "disk.file.get", Portal: c.portal, Description: "file " + id.String() + " not found", kind: KindNotFound}
	}
	var f DiskFile
	if err := json.Unmarshal(resp.Result, &f); err != nil {
		return nil, &Error{Status: 200, Method: "disk.file.get", Portal: c.portal, Description: "decode file: " + err.Error(), Err: err, kind: KindPermanent}
	}
	return &f, nil
}
