// TypeScript with real types: an interface, a union, a generic function.
interface Person {
  name: string;
  language: 'en' | 'fr' | 'de';
}

const greetings: Record<Person['language'], string> = { en: 'Hello', fr: 'Bonjour', de: 'Hallo' };

function greet(person: Person): string {
  return `${greetings[person.language]}, ${person.name}!`;
}

function longest<T extends { length: number }>(items: T[]): T | undefined {
  return items.reduce<T | undefined>((best, item) => (best === undefined || item.length > best.length ? item : best), undefined);
}

const people: Person[] = [
  { name: 'Ada', language: 'en' },
  { name: 'Marie', language: 'fr' },
  { name: 'Emmy', language: 'de' },
];

for (const person of people) console.log(greet(person));
console.log(`longest greeting: ${longest(people.map(greet))}`);
