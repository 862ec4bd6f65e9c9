// The pages' language: Norwegian Bokmål (nb) or English (en). The English text is the
// key; NB holds its Bokmål. The choice is the user's (the toggle on every page, kept in
// this browser), else the browser's languages (nb, nn or no → Bokmål, en → English),
// else Bokmål: vakt's users are Norwegian home-care staff and operators.
// Server messages are English; the known error codes have a Bokmål text of their own.
// tests/browser/i18n.mjs checks that every text the pages use has its Bokmål.

// Marks a text for translation where it is defined (a table), not where it is shown.
export const N_ = (text) => text;

export function chooseLang(stored, preferred) {
  if (stored === 'nb' || stored === 'en') return stored;
  for (const l of preferred || []) {
    const base = String(l).toLowerCase().split('-')[0];
    if (base === 'nb' || base === 'nn' || base === 'no') return 'nb';
    if (base === 'en') return 'en';
  }
  return 'nb';
}

const STORE_KEY = 'vakt.lang';
const inBrowser = typeof window !== 'undefined' && typeof localStorage !== 'undefined';
export const lang = inBrowser ? chooseLang(localStorage.getItem(STORE_KEY), navigator.languages || [navigator.language]) : 'en';

// `text` in the page's language, with {name} replaced from `vars`.
export function t(text, vars) {
  const s = (lang === 'nb' && NB[text]) || text;
  return vars ? s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m)) : s;
}

// A refusal's text: the code's own in Bokmål, else the server's (English) message.
export function errorText(code, message) {
  return (lang === 'nb' && code && NB_ERRORS[code]) || message;
}

// A number with `digits` decimals, the language's way (Bokmål: a decimal comma).
export function decimal(x, digits) {
  return x.toLocaleString(lang === 'nb' ? 'nb-NO' : 'en-GB', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

// Translates the static page: the text of [data-i18n] elements, the attributes named in
// data-i18n-attr, and sets up the language toggle ([data-lang-toggle]).
export function translatePage(root = document) {
  document.documentElement.lang = lang;
  for (const e of root.querySelectorAll('[data-i18n]')) {
    e.textContent = t(e.textContent.trim().replace(/\s+/g, ' '));
  }
  for (const e of root.querySelectorAll('[data-i18n-attr]')) {
    for (const a of e.dataset.i18nAttr.split(',')) {
      if (e.hasAttribute(a)) e.setAttribute(a, t(e.getAttribute(a)));
    }
  }
  for (const b of root.querySelectorAll('[data-lang-toggle]')) {
    const other = lang === 'nb' ? 'en' : 'nb';
    b.textContent = other === 'nb' ? 'Norsk' : 'English';
    b.lang = other;
    b.addEventListener('click', () => {
      localStorage.setItem(STORE_KEY, other);
      location.reload();
    });
  }
}

export const NB_ERRORS = {
  login_required: 'Logg inn først.',
  session_expired: 'Innloggingen er utløpt. Logg inn igjen.',
  wrong_credentials: 'Feil brukernavn eller passord.',
  too_many_attempts: 'For mange forsøk. Vent litt og prøv igjen.',
  weak_password: 'Passordet må ha minst 10 tegn.',
  same_password: 'Det nye passordet er det samme som det gamle.',
  forbidden: 'Rollen din har ikke lov til dette.',
  csrf: 'Siden er for gammel. Last den inn på nytt.',
  not_your_centre: 'Hendelsen hører til et annet responssenter.',
  not_offered: 'Denne alarmen er ikke tilbudt deg (lenger).',
  not_assigned: 'Denne alarmen er ikke din.',
  not_at_this_centre: 'Hendelsen er ikke ved dette senteret.',
  unknown_incident: 'Ukjent hendelse.',
  wrong_state: 'Det går ikke i denne tilstanden.',
  already_taken: 'En annen har allerede tatt den.',
  off_duty: 'Du er ikke på vakt.',
  nothing_to_cancel: 'Det er ingenting å avbryte.',
  not_in_scope: 'Den ansatte hører ikke til kommunen eller dens reserveteam.',
  action_set_aside: 'Akkurat denne handlingen fikk systemet til å feile før (en feil i vakt), så den blir ikke gjort på nytt. Gjør det den skulle på en annen måte, og meld fra om feilen.',
  empty_note: 'Notatet er tomt.',
  note_too_long: 'Notatet er for langt (høyst 2000 tegn).',
  bad_user: 'Brukernavnet kan ikke brukes for en operatør. Be en administrator om et nytt.',
  note_unreadable: 'Notatet har et usynlig tegn (for eksempel et tegn som snur teksten) og ble ikke lagret. Skriv det på nytt.',
  not_ready: 'Systemet starter opp, eller databasen tar ikke imot endringer nå. Ingenting ble endret; prøv igjen om litt.',
  store_unavailable: 'Databasen svarer ikke akkurat nå. Prøv igjen om litt.',
  not_stored_yet: 'Handlingen er tatt imot, men kan ikke lagres ennå. Den gjennomføres når databasen svarer igjen; ikke gjenta den.',
  engine_unavailable: 'Alarmmotoren stopper eller er stoppet.',
};

export const NB = {
  "Password": "Passord",
  "Log out": "Logg ut",
  "Off duty": "Ikke på vakt",
  "Go on duty": "Gå på vakt",
  "Position:": "Posisjon:",
  "not shared": "ikke delt",
  "Shared from the phone's location while on duty. If that is not available, enter it here.": "Deles fra telefonens posisjon mens du er på vakt. Er den ikke tilgjengelig, skriv den inn her.",
  "Lat": "Bredde",
  "Lon": "Lengde",
  "Use this position": "Bruk denne posisjonen",
  "No offers. You will hear a sound when one comes.": "Ingen alarmer til deg nå. Du hører en lyd når det kommer en.",
  "Live updates": "Direkte oppdatering",
  "Duty": "Vakt",
  "Offers and incidents": "Alarmer og hendelser",
  "{label}: done": "{label}: utført",
  "{label}: {error}": "{label}: {error}",
  "On duty": "På vakt",
  "Go off duty": "Gå av vakt",
  "Open in maps": "Åpne i kart",
  "Accept": "Ta alarmen",
  "Decline": "Avslå",
  "Helped": "Hjulpet",
  "False alarm": "Falsk alarm",
  "Referred to the health service": "Henvist til helsetjenesten",
  "Technical, fixed": "Teknisk feil, rettet",
  "Note": "Notat",
  "Yours: {stage}": "Din: {stage}",
  "On my way": "På vei",
  "On site": "Framme",
  "Close": "Avslutt",
  "{time} to answer": "{time} igjen å svare på",
  "passing on…": "sendes videre…",
  "Position: give latitude and longitude as numbers": "Posisjon: skriv bredde- og lengdegrad som tall",
  "Position": "Posisjon",
  "Safety alarm": "Trygghetsalarm",
  "Fall": "Fall",
  "Man down": "Mann ned",
  "Door": "Dør",
  "Wandering (GPS)": "Utenfor sone (GPS)",
  "Bed sensor": "Sengesensor",
  "Smoke": "Røyk",
  "Medication": "Medisin",
  "Assistance": "Hjelp",
  "Battery low": "Lavt batteri",
  "Power failure": "Strømbrudd",
  "Heartbeat missed": "Mangler livstegn fra utstyret",
  "Connection lost": "Mistet forbindelsen",
  "shared response centre": "felles responssenter",
  "mobile guard room": "mobilt vaktrom",
  "private response centre": "privat responssenter",
  "own response centre": "eget responssenter",
  "low": "lav",
  "normal": "normal",
  "high": "høy",
  "critical": "kritisk",
  "accepted": "tatt",
  "en route": "på vei",
  "on site": "framme",
  "helped": "hjulpet",
  "false alarm": "falsk alarm",
  "referred to health service": "henvist til helsetjenesten",
  "technical, fixed": "teknisk feil, rettet",
  "resolved by the centre": "løst av responssenteret",
  "cancelled": "avbrutt",
  "declined": "avslått",
  "expired": "tiden gikk ut",
  "taken by another": "tatt av en annen",
  "answered by an operator": "besvart av en operatør",
  "staff went off duty": "den ansatte gikk av vakt",
  "note": "notat",
  "accept": "ta alarmen",
  "decline": "avslå",
  "close": "avslutt",
  "answer": "svar",
  "resolve": "løs",
  "forward to home care": "send til hjemmetjenesten",
  "escalate": "send til alle",
  "assign": "tildel",
  "operator": "operatør",
  "staff": "ansatt",
  "planner": "planlegger",
  "admin": "administrator",
  "alarm": "alarm",
  "centre": "senter",
  "vakt · dashboard": "vakt · oversikt",
  "within 60 s today": "innen 60 s i dag",
  "last 7 days": "siste 7 dager",
  "last 30 days": "siste 30 dager",
  "open incidents": "åpne hendelser",
  "staff on duty": "ansatte på vakt",
  "No incidents right now.": "Ingen hendelser nå.",
  "incident": "hendelse",
  "off duty": "ikke på vakt",
  "resident": "bruker",
  "Model": "Modell",
  "Today": "I dag",
  "7 days": "7 dager",
  "30 days": "30 dager",
  "Key figures": "Nøkkeltall",
  "Incidents": "Hendelser",
  "Incident detail": "Hendelsen",
  "Map": "Kart",
  "Answered within the target": "Besvart innen målet",
  "Municipality": "Kommune",
  "Select an incident to see its timeline and act on it.": "Velg en hendelse for å se forløpet og handle på den.",
  "Waiting for an answer": "Venter på svar",
  "Operator on the line": "Operatør i samtale",
  "Waiting for home care": "Venter på hjemmetjenesten",
  "Staff accepted": "Ansatt har tatt den",
  "Staff on the way": "Ansatt på vei",
  "Staff on site": "Ansatt framme",
  "Closed": "Avsluttet",
  "answered in {time}": "besvart på {time}",
  "Alarm {alarm} ({kind}, {priority}) from {resident}, model {model}": "Alarm {alarm} ({kind}, {priority}) fra {resident}, modell {model}",
  "Queued at {centre}": "I kø ved {centre}",
  "Left the queue at {centre}": "Ute av køen ved {centre}",
  "Offered to{who} (everyone on duty), ETA {eta}": "Tilbudt{who} (alle på vakt), framme om {eta}",
  "Offered to{who}, ETA {eta}": "Tilbudt{who}, framme om {eta}",
  "Offer to{who} withdrawn: {reason}": "Tilbudet til{who} trukket: {reason}",
  "Offered to everyone on duty": "Tilbudt alle på vakt",
  "Forwarded to the backup {backup}": "Sendt videre til reserven {backup}",
  "Alert: nobody has it after {time}": "Varsel: ingen har tatt den etter {time}",
  "Assigned by {operator} to {staff}": "Tildelt {staff} av {operator}",
  "Escalated by {operator}": "Sendt til alle av {operator}",
  "Note by {by}: {note}": "Notat fra {by}: {note}",
  "Answered by {by} in {time}": "Besvart av {by} på {time}",
  "Resolved on the phone by {operator}": "Løst på telefon av {operator}",
  "Forwarded to home care by {operator}": "Sendt til hjemmetjenesten av {operator}",
  "Accepted by{who}": "Tatt av{who}",
  "{staff} is on the way": "{staff} er på vei",
  "{staff} on site, {time} after the alarm": "{staff} framme, {time} etter alarmen",
  "Closed: {outcome} ({note})": "Avsluttet: {outcome} ({note})",
  "Closed: {outcome}": "Avsluttet: {outcome}",
  "Another alarm joined: {alarm}": "Ny alarm lagt til: {alarm}",
  "Refused: {detail}": "Avvist: {detail}",
  "Set aside by vakt (a fault in vakt met it): no more offers, escalations or alerts from vakt; handle it by hand": "Lagt til side av vakt (en feil i vakt traff den): vakt sender ingen flere tilbud, eskaleringer eller varsler; følg den opp manuelt",
  "Set aside: handle it by hand": "Lagt til side: følg opp manuelt",
  "Set aside": "Lagt til side",
  "vakt will not pass this on: take it, or tell the operators": "vakt sender ikke denne videre: ta den, eller si fra til operatørene",
  "vakt no longer offers, escalates or alerts on it: handle it by hand": "vakt sender ikke lenger tilbud, eskalerer eller varsler på den: følg den opp manuelt",
  "set aside": "lagt til side",
  "vakt itself": "vakt selv",
  "refused: {reason}": "avvist: {reason}",
  "Resident": "Bruker",
  "Notes": "Merknader",
  "Alarm text": "Alarmtekst",
  "Received": "Mottatt",
  "Answered": "Besvart",
  "Offered to": "Tilbudt",
  "Staff": "Ansatt",
  "Timeline": "Forløp",
  "Note (for the record, or with Resolve)": "Notat (til loggen, eller sammen med Løs)",
  "{name} (busy)": "{name} (opptatt)",
  "Not in this state": "Ikke mulig nå",
  "Answer": "Svar",
  "Resolve": "Løs",
  "Forward to home care": "Send til hjemmetjenesten",
  "Forward": "Send videre",
  "Escalate to all": "Send til alle",
  "Escalate": "Send til alle",
  "Assign": "Tildel",
  "Add note": "Legg til notat",
  " (on duty)": " (på vakt)",
  " (off duty)": " (ikke på vakt)",
  "{n} answered since {time}, {late} waiting past the target": "{n} besvart siden {time}, {late} venter over målet",
  "all ({model})": "alle ({model})",
  "{within} of {answered}": "{within} av {answered}",
  "vakt · log in": "vakt · logg inn",
  "Alarm response: operators' dashboard and staff app": "Alarmmottak: oversikt for operatører og app for ansatte",
  "Username": "Brukernavn",
  "Log in": "Logg inn",
  "Zoom in": "Zoom inn",
  "Zoom out": "Zoom ut",
  "Show everything": "Vis alt",
  "No map tiles configured: positions on a plain background": "Ingen kartfliser satt opp: posisjonene vises på blank bakgrunn",
  "vakt · change password": "vakt · bytt passord",
  "Change the password of": "Bytt passord for",
  "Your other sessions end; this one stays.": "Andre innlogginger avsluttes; denne blir.",
  "Current password": "Nåværende passord",
  "New password (at least 10 characters)": "Nytt passord (minst 10 tegn)",
  "New password again": "Nytt passord en gang til",
  "Change password": "Bytt passord",
  "Password changed.": "Passordet er byttet.",
  "Back": "Tilbake",
  "The new passwords differ.": "De nye passordene er ikke like.",
  "Refused alarms": "Avviste alarmer",
  "No one was offered these alarms. Each may still be a person who needs help: find them by the resident or the alarm id.": "Ingen har fått disse alarmene. Hver av dem kan likevel være en person som trenger hjelp: finn personen ut fra bruker-id eller alarm-id.",
  "A message too large is listed too, whatever it was: find the device or app that sent it.": "En melding som er for stor, står også her, uansett hva den var: finn enheten eller appen som sendte den.",
  "Gateways offline": "Mottakere uten forbindelse",
  "Alarms sent through these gateways cannot reach vakt until they are back. Check their power and network.": "Alarmer som sendes gjennom disse mottakerne, kommer ikke fram til vakt før de er tilbake. Sjekk strøm og nettverk.",
  "offline since {time}": "uten forbindelse siden {time}",
  "Seen to: take it off the list": "Fulgt opp: ta den av lista",
  "Past the target: nobody has answered it": "Over målet: ingen har svart på den",
  "past the target now": "over målet nå",
  "at the backup centre": "hos reservesentralen",
  "offered to everyone on duty": "tilbudt alle på vakt",
  "alert raised": "varsel sendt",
  "Silent devices": "Enheter som har stilnet",
  "These alarm devices have not been heard within their interval: their residents' alarms may not reach vakt. Each has raised a heartbeat_missed alarm.": "Disse alarmenhetene har ikke meldt seg innen sitt intervall: alarmene fra brukerne deres kommer kanskje ikke fram til vakt. Hver av dem har utløst en alarm om uteblitt livstegn.",
  "Alarm devices": "Alarmenheter",
  "Device": "Enhet",
  "Protocol": "Protokoll",
  "Resident": "Bruker",
  "Last heard": "Sist hørt",
  "never": "aldri",
  "not heard since {time}": "ikke hørt siden {time}",
  "{n} registered, {silent} silent": "{n} registrert, {silent} stille",
  "Unknown device": "Ukjent enhet",
  "Wrong encryption key": "Feil krypteringsnøkkel",
  "Device clock wrong": "Feil klokke i enheten",
  "Event vakt does not handle": "Hendelse vakt ikke håndterer",
  "Too many messages or connections": "For mange meldinger eller tilkoblinger",
  "Unknown resident": "Ukjent bruker",
  "Unknown municipality": "Ukjent kommune",
  "Resident of another municipality": "Bruker i en annen kommune",
  "Impossible time": "Umulig tidspunkt",
  "Unknown kind of alarm": "Ukjent alarmtype",
  "Invalid field": "Ugyldig felt",
  "Unreadable message": "Uleselig melding",
  "Message too large": "For stor melding",
  "Wrong topic": "Feil emne",
  "resident {id}": "bruker {id}",
  "alarm {id}": "alarm {id}",
  "staff member {id}": "ansatt {id}",
  // vakt not taking alarms (common.js: watchReadiness).
  "Alarms are not being handled: {why}. Alarms sent meanwhile are kept and come through when vakt is back; until then, follow the backup routine.": "Alarmer blir ikke håndtert nå: {why}. Alarmer som sendes i mellomtiden, blir tatt vare på og kommer fram når vakt er tilbake; følg reserverutinen til da.",
  "the vakt engine has stopped": "vakt-motoren har stoppet",
  "vakt is starting, or its database does not answer": "vakt starter, eller databasen svarer ikke",
  "vakt has no connection to the alarm broker": "vakt har ingen forbindelse til alarmformidleren (MQTT)",
  "this page cannot reach vakt": "denne siden får ikke kontakt med vakt",
  "not an answer from vakt (HTTP {status})": "ikke et svar fra vakt (HTTP {status})",
};
