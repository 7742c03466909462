/** Where every panel's webview may load from, and the URIs of a panel's own bundle and stylesheet. */
import * as vscode from 'vscode';

/** Scripts only from dist/webview, styles only from media; the page is rebuilt when it is shown again. */
export function panelWebviewOptions(extensionUri: vscode.Uri): vscode.WebviewPanelOptions & vscode.WebviewOptions {
  return {
    enableScripts: true,
    retainContextWhenHidden: false,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(extensionUri, 'media')],
  };
}

/** The CSP source and the URIs of panel `name`'s bundle (dist/webview/NAME.js) and stylesheet (media/NAME.css). */
export function panelAssets(
  webview: vscode.Webview,
  extensionUri: vscode.Uri,
  name: string,
): { cspSource: string; scriptUri: string; styleUri: string } {
  return {
    cspSource: webview.cspSource,
    scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview', `${name}.js`)).toString(),
    styleUri: webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'media', `${name}.css`)).toString(),
  };
}
