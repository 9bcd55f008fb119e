'use strict';
'require view';
'require poll';
'require rpc';
'require ui';

/*
 * Status of the weft mesh: this node, its neighbours with link quality,
 * routes, the nodes known from credentials and the WireGuard tunnels.
 * Everything comes from the rpcd plugin (ubus object "weft"), which reads
 * the daemon's control socket; the tables refresh with LuCI's poll loop.
 */

const callStatus = rpc.declare({ object: 'weft', method: 'get_status' });
const callNeighbours = rpc.declare({ object: 'weft', method: 'get_neighbours' });
const callRoutes = rpc.declare({ object: 'weft', method: 'get_routes' });
const callXroutes = rpc.declare({ object: 'weft', method: 'get_xroutes' });
const callNodes = rpc.declare({ object: 'weft', method: 'get_nodes' });
const callTunnels = rpc.declare({ object: 'weft', method: 'get_tunnels' });

/* babeld-shaped replies: { IPv4: [...], IPv6: [...] } */
function families(reply) {
	if (!L.isObject(reply))
		return [];
	return [].concat(Array.isArray(reply.IPv6) ? reply.IPv6 : [], Array.isArray(reply.IPv4) ? reply.IPv4 : []);
}

function list(reply, key) {
	return (L.isObject(reply) && Array.isArray(reply[key])) ? reply[key] : [];
}

function yesno(v) {
	return v ? _('yes') : _('no');
}

function text(v) {
	return (v == null || v === '') ? '-' : String(v);
}

/* Share of the last 16 Hellos heard, from the reach bitmap. */
function reachPercent(reach) {
	let n = 0;
	for (let r = reach & 0xffff; r; r &= r - 1)
		n++;
	return Math.round(n * 100 / 16);
}

function quality(n) {
	const pct = reachPercent(n.hello_reach);
	return E('div', {
		'class': 'cbi-progressbar',
		'title': _('%d%% of recent Hellos heard, link cost %d').format(pct, n.cost != null ? n.cost : n.rxcost)
	}, E('div', { 'style': 'width:%d%%'.format(pct) }));
}

function seconds(ms) {
	return (ms == null) ? '-' : '%.1fs'.format(ms / 1000);
}

function uptime(s) {
	if (s == null)
		return '-';
	return '%dh %dm %ds'.format(Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60);
}

function table(id, titles) {
	return E('table', { 'class': 'table', 'id': id }, [
		E('tr', { 'class': 'tr table-titles' }, titles.map(t => E('th', { 'class': 'th' }, t)))
	]);
}

return view.extend({
	load() {
		return Promise.all([
			callStatus(), callNeighbours(), callRoutes(), callXroutes(), callNodes(), callTunnels()
		].map(p => L.resolveDefault(p, null)));
	},

	renderSummary(status) {
		const box = this.el.summary;
		if (!L.isObject(status) || status.error) {
			box.replaceChildren(E('div', { 'class': 'alert-message warning' },
				_('The weft daemon does not answer: %s').format(L.isObject(status) ? status.error : _('no reply'))));
			return;
		}
		const trust = L.isObject(status.trust) ? status.trust : {};
		const counts = L.isObject(status.counts) ? status.counts : {};
		const cred = L.isObject(trust.credential) ? trust.credential : null;
		const rows = [
			[_('Version'), status.version],
			[_('Router ID'), status.router_id],
			[_('Mesh address'), trust.mesh_address],
			[_('Credential'), cred ? '%s, %s %s'.format(cred.name, _('expires'), cred.expires) : null],
			[_('Uptime'), uptime(status.uptime_s)],
			[_('Neighbours / routes / installed'), '%d / %d / %d'.format(counts.neighbours || 0, counts.routes || 0, counts.installed || 0)],
			[_('Refused announcements'), trust.refused_announcements]
		];
		box.replaceChildren(E('table', { 'class': 'table', 'id': 'weft-node' },
			rows.map(r => E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td left', 'width': '33%' }, r[0]),
				E('td', { 'class': 'td left' }, text(r[1]))
			]))));
	},

	update(data) {
		const [status, neighbours, routes, xroutes, nodes, tunnels] = data;

		this.renderSummary(status);

		cbi_update_table(this.el.neighbours, families(neighbours).map(n => [
			n.name || '-',
			n.address,
			n.dev,
			quality(n),
			n.rxcost,
			n.txcost,
			n.cost,
			seconds(n.last_hello_ms)
		]), E('em', _('No neighbours')));

		cbi_update_table(this.el.routes, families(routes).map(r => [
			r.address,
			r.via + (r.nexthop ? ' (%s)'.format(r.nexthop) : ''),
			r.dev,
			r.route_metric,
			r.route_smoothed_metric,
			r.id,
			r.seqno,
			yesno(r.installed),
			yesno(r.feasible)
		]), E('em', _('No routes')));

		cbi_update_table(this.el.xroutes, families(xroutes).map(x => [
			x.address, x.metric
		]), E('em', _('Nothing announced')));

		cbi_update_table(this.el.nodes, list(nodes, 'nodes').map(n => [
			text(n.name) + (n.self ? ' (%s)'.format(_('this node')) : ''),
			text(n.address),
			(n.groups || []).join(', ') || '-',
			(n.prefixes || []).join(', ') || '-',
			n.status,
			text(n.expires),
			text(n.tunnel)
		]), E('em', _('No nodes known')));

		cbi_update_table(this.el.tunnels, list(tunnels, 'tunnels').map(t => [
			text(t.interface),
			text(t.name),
			E('code', {}, (t.key || '').substring(0, 12) + '…'),
			yesno(t.verified),
			text(t.endpoint),
			text(t.cost),
			text(t.credential_expires)
		]), E('em', _('No tunnels')));
	},

	render(data) {
		/* Kept to update them in place, attached to the page or not yet. */
		this.el = {
			summary: E('div', { 'id': 'weft-summary' }),
			neighbours: table('weft-neighbours', [_('Name'), _('Address'), _('Interface'), _('Link quality'),
				_('RX cost'), _('TX cost'), _('Cost'), _('Last Hello')]),
			routes: table('weft-routes', [_('Prefix'), _('Via'), _('Interface'), _('Metric'), _('Smoothed'),
				_('Router ID'), _('Seqno'), _('Installed'), _('Feasible')]),
			xroutes: table('weft-xroutes', [_('Prefix'), _('Metric')]),
			nodes: table('weft-nodes', [_('Name'), _('Mesh address'), _('Groups'), _('Prefixes'),
				_('Credential'), _('Expires'), _('Tunnel')]),
			tunnels: table('weft-tunnels', [_('Interface'), _('Peer'), _('Key'), _('Verified'), _('Endpoint'),
				_('Cost'), _('Credential expires')])
		};
		const section = (title, el) => E('div', { 'class': 'cbi-section' }, [ E('h3', {}, title), el ]);
		const view = E([], [
			E('h2', {}, _('weft mesh')),
			E('div', { 'class': 'cbi-map-descr' },
				_('Zero-trust Babel mesh routing: every link is a WireGuard tunnel to a node with a valid credential.')),
			section(_('This node'), this.el.summary),
			section(_('Neighbours'), this.el.neighbours),
			section(_('Routes'), this.el.routes),
			section(_('Announced prefixes'), this.el.xroutes),
			section(_('Nodes'), this.el.nodes),
			section(_('Tunnels'), this.el.tunnels)
		]);

		this.update(data);

		poll.add(() => this.load().then(d => this.update(d)), 5);

		return view;
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
